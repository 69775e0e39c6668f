"""The command as a user runs it: Ctrl-C, --resume, exit codes, the report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import fastavro
import pytest

from devenv import LocalKafka
from tests.replay.helpers import fill_topic

pytestmark = pytest.mark.integration


def vcstream(config: Path, *args: str, **popen: object) -> subprocess.Popen[str]:
    env = {**os.environ, "XDG_STATE_HOME": str(config.parent / "state")}
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "cli", "replay", "--config", str(config), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **popen,
    )


def config_for(kafka: LocalKafka, tmp_path: Path) -> Path:
    path = tmp_path / "vcstream.yaml"
    path.write_text(f"kafka:\n  bootstrapServers: {kafka.bootstrap_servers}\n")
    return path


def comparable(report: dict[str, object]) -> dict[str, object]:
    """What two replays of one range must agree on (not timing, not the target name)."""
    return {k: v for k, v in report.items() if k not in ("run", "target")}


@pytest.mark.parametrize("output_format", ["json", "avro"])
def test_interrupted_replay_resumed_gives_the_same_report_as_an_uninterrupted_one(
    kafka: LocalKafka, topic_name: Callable[[str], str], tmp_path: Path, output_format: str
) -> None:
    topic = topic_name("resume")
    fill_topic(kafka, topic, 600, partitions=2, poison_every=50)
    config = config_for(kafka, tmp_path)
    range_args = ["--topic", topic, "--from-beginning", "--type", "*Vm*"]
    range_args += ["--format", output_format]

    whole = vcstream(
        config,
        *range_args,
        "--to",
        f"file:{tmp_path / 'whole.jsonl'}",
        "--report",
        str(tmp_path / "whole.json"),
    )
    assert whole.wait(60) == 0, whole.communicate()[1]

    out = tmp_path / "parts.jsonl"
    target = ["--to", f"file:{out}", "--report", str(tmp_path / "parts.json")]
    first = vcstream(config, *range_args, *target, "--rate", "100")
    deadline = time.monotonic() + 30
    while (not out.exists() or out.stat().st_size == 0) and time.monotonic() < deadline:
        time.sleep(0.1)
    first.send_signal(signal.SIGINT)
    _, stderr = first.communicate(timeout=30)
    assert first.returncode == 130, stderr
    assert "stopped at partition" in stderr and "--resume" in stderr
    partial = json.loads((tmp_path / "parts.json").read_text())
    assert partial["complete"] is False
    assert 0 < partial["totals"]["read"] < 600

    second = vcstream(config, *range_args, *target, "--resume")
    _, stderr = second.communicate(timeout=60)
    assert second.returncode == 0, stderr

    resumed = json.loads((tmp_path / "parts.json").read_text())
    uninterrupted = json.loads((tmp_path / "whole.json").read_text())
    assert resumed["run"]["runs"] == 2
    assert comparable(resumed) == comparable(uninterrupted)
    assert uninterrupted["totals"] == {
        **uninterrupted["totals"],
        "read": 600,
        "skipped": 12,
        "written": 392,
        "filtered": 196,
    }
    assert replayed_events(out, output_format) == replayed_events(
        tmp_path / "whole.jsonl", output_format
    )


def replayed_events(path: Path, output_format: str) -> list[tuple[int, int, str]]:
    """(partition, offset, event id) in file order; Avro files must also chain intact."""
    if output_format == "json":
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        return [(x["partition"], x["offset"], x["event"]["id"]) for x in lines]
    from sinks.audit.record import GENESIS, record_hash

    with path.open("rb") as stream:
        rows = [row for row in fastavro.reader(stream) if isinstance(row, dict)]
    last: dict[int, str] = {}
    for row in rows:
        assert row["prevHash"] == last.get(row["partition"], GENESIS)
        assert row["hash"] == record_hash(row)
        last[row["partition"]] = row["hash"]
    return [(row["partition"], row["offset"], row["id"]) for row in rows]


def test_resume_without_an_interrupted_run_exits_2(
    kafka: LocalKafka, topic_name: Callable[[str], str], tmp_path: Path
) -> None:
    topic = topic_name("noresume")
    fill_topic(kafka, topic, 5)
    run = vcstream(config_for(kafka, tmp_path), "--topic", topic, "--from-beginning", "--resume")
    _, stderr = run.communicate(timeout=30)
    assert run.returncode == 2
    assert "no interrupted replay of this command" in stderr


def test_out_of_range_offset_exits_2_with_the_available_range(
    kafka: LocalKafka, topic_name: Callable[[str], str], tmp_path: Path
) -> None:
    topic = topic_name("cli-range")
    fill_topic(kafka, topic, 5)
    run = vcstream(config_for(kafka, tmp_path), "--topic", topic, "--from-offset", "0:7")
    stdout, stderr = run.communicate(timeout=30)
    assert run.returncode == 2
    assert "--from-offset 7 is beyond the last offset; partition 0: offsets 0..4" in stderr
    assert stdout == ""


def test_a_replay_starts_without_importing_what_only_a_terminal_or_a_server_needs() -> None:
    """Every replay (and each spawned worker) imports the command and the replay
    modules: rich (the progress bar, only on a terminal) and prometheus_client (the
    roles that serve metrics; a sink target still imports it) were ~80 ms of that
    start-up."""
    code = (
        "import io, sys, cli, replay.session, replay.targets.jsonlines, replay.workers\n"
        "from replay.progress import progress_for\n"
        "progress_for(1, 0, 'replay', io.StringIO())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('rich', 'prometheus_client')))\n"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"
