"""What the `vcstream` command costs before it does any work: its help, and a replay's
fixed cost (start-up, the plan, the first record, the report), as a user waits for them.

    .venv/bin/python -m bench.cli_startup [--runs 9] [--bootstrap HOST:PORT]
        [--checkout DIR ...]

Cases, each run `--runs` times (the figure is the median, with the extremes):

- `python_bare`: `python -c pass`, the interpreter's own floor;
- `help`, `replay_help`: `vcstream --help`, `vcstream replay --help`;
- `replay_one_record`: `vcstream replay --count 1 --partition 0 --to file:` on a
  6-partition topic: start-up, plan, one record, report, in one process;
- `replay_workers_one_record`: the same with `--count 1 --workers 2` (a record from each
  partition): the coordinator's start-up and plan, two forked workers to their first
  records, and the join of their parts. What this costs is what `--workers 2` adds to
  any replay, whatever its size.

Each case runs once untimed first (byte code written, files in the page cache). Every
`--checkout` (a source tree: this one by default) runs the same cases with
`python -m cli` from that tree; with several, they take turns run by run (A, B, A, B,
...), so a change in the machine's load falls on all of them. Each figure has its
wall time (the command's start to its exit, as the shell waits for it), the CPU
seconds of its process tree (wait4) and the 1-minute load average when it ended.
Without --bootstrap a private local broker is started. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from bench.machine import machine
from bench.processes import run_measured
from bench.replay import preload
from devenv import LocalKafka
from vcstream.kafka import TopicSpec, ensure_topics
from vcstream.settings.kafka import KafkaSettings

PARTITIONS = 6
RECORDS = 6_000  # enough that each partition holds records; the cases read one each


def _timed(command: list[str], checkout: Path) -> dict[str, float]:
    """One run of `command` from `checkout`, as a user waits for it (`run_measured`:
    until wait4 returns, from byte code)."""
    measured = run_measured(command, cwd=checkout, pythonpath=checkout)
    return {
        "wall_seconds": measured.wall_seconds,
        "cpu_seconds": measured.cpu_seconds,
        "load_average_1m": measured.load_1m,
    }


def cases(config: Path, topic: str, workdir: Path) -> dict[str, list[str]]:
    vcstream = [sys.executable, "-m", "cli"]
    replay = [
        *vcstream, "replay", "--config", str(config), "--topic", topic, "--from-beginning",
        "--count", "1",
    ]  # fmt: skip
    return {
        "python_bare": [sys.executable, "-c", "pass"],
        "help": [*vcstream, "--help"],
        "replay_help": [*vcstream, "replay", "--help"],
        "replay_one_record": [
            *replay, "--partition", "0", "--to", f"file:{workdir / 'one.jsonl'}",
            "--state", str(workdir / "state-one.json"),
        ],
        "replay_workers_one_record": [
            *replay, "--workers", "2", "--to", f"file:{workdir / 'workers.jsonl'}",
            "--state", str(workdir / "state-workers.json"),
        ],
    }  # fmt: skip


def _summary(runs: list[dict[str, float]]) -> dict[str, Any]:
    summary: dict[str, Any] = {"runs": len(runs)}
    for figure in ("wall_seconds", "cpu_seconds", "load_average_1m"):
        values = [run[figure] for run in runs]
        summary[figure] = {
            "median": round(statistics.median(values), 3),
            "min": round(min(values), 3),
            "max": round(max(values), 3),
        }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--bootstrap", help="an existing broker; default: start a local one")
    parser.add_argument(
        "--checkout",
        action="append",
        type=Path,
        help="a source tree to run `python -m cli` from (repeatable; default: this one)",
    )
    args = parser.parse_args()
    checkouts = [c.resolve() for c in args.checkout or [Path(__file__).parents[1]]]

    workdir = Path(tempfile.mkdtemp(prefix="bench-cli-startup-"))
    broker = None
    bootstrap = args.bootstrap
    if bootstrap is None:
        broker = LocalKafka(workdir / "kafka", heap="1g").start()
        bootstrap = broker.bootstrap_servers
    try:
        topic = f"bench.cli-startup.{uuid.uuid4().hex[:8]}"
        ensure_topics(
            KafkaSettings(bootstrapServers=bootstrap), [TopicSpec(topic, partitions=PARTITIONS)]
        )
        preload(bootstrap, topic, RECORDS)
        config = workdir / "vcstream.yaml"
        config.write_text(f"kafka:\n  bootstrapServers: {bootstrap}\n")
        commands = cases(config, topic, workdir)
        runs: dict[str, dict[str, list[dict[str, float]]]] = {
            str(c): {name: [] for name in commands} for c in checkouts
        }
        result: dict[str, Any] = {
            "benchmark": "cli_startup",
            "load_average_1m_at_start": round(os.getloadavg()[0], 2),
        }
        for command in commands.values():  # warm-up: byte code, page cache
            for checkout in checkouts:
                _timed(command, checkout)
        for _ in range(args.runs):
            for name, command in commands.items():
                for checkout in checkouts:
                    runs[str(checkout)][name].append(_timed(command, checkout))
        result["checkouts"] = {
            checkout: {name: _summary(measured) for name, measured in figures.items()}
            for checkout, figures in runs.items()
        }
        result["machine"] = machine()
        print(json.dumps(result, indent=2))
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
