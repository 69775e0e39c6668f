"""Replay throughput, side by side with the tools it is measured against, in ONE run on
one pre-loaded topic (distinct keys over several partitions, VEBA-shaped records):

- `kcat -C -e` writing the values into a file (the ceiling: librdkafka in C),
- a bare confluent-kafka consume loop in Python (the ceiling for any Python stage), as
  `bench.kafka_ceiling` runs it and with the replay's fetch settings, batch size and
  collector settings, reading each record's headers and value (what a replay pays
  before any check),
- `vcstream replay --to file:` and `--to audit` (files backend), each with one
  process and with `--workers N`.

    .venv/bin/python -m bench.replay [--records 200000] [--partitions 6] [--workers 2]
        [--stages kcat,consume,file,audit] [--rounds 1] [--bootstrap HOST:PORT]
        [--worker-counts 1,2] [--checkout DIR ...]

With `--rounds R` every stage runs R times, the stages taking turns (kcat, consume,
..., kcat, consume, ...), so a change in the machine's load falls on all of them: each
run's ratios are to the ceilings of its own round, and `summary` gives each stage's
median over the rounds. Every `--checkout` (a source tree; default: the one this runs
from) runs the replay stages with `python -m cli` from that tree, the checkouts taking
turns within each round after the ceilings, so an A/B of a change against its base falls
in one window: each replay run names its checkout, and `summary` has a row per stage and
checkout. `--worker-counts` picks which replays run (default: 1 and `--workers`).

kcat's own rate is bimodal on this topic (200,000 records of 6 partitions: ~0.78 s or
~1.52 s, about one run in four slow): kcat 1.7.1 (librdkafka 2.0.2, its defaults)
consumes every partition into one queue, and a fetch round of the 6 partitions brings
~64 MB / ~65,000 records of these compressible records, so the queue can pass
`queued.max.messages.kbytes` (64 MB) or `queued.min.messages` (100,000): every
partition then leaves the fetch list and fetching resumes ~0.7 s later (that librdkafka
has no `fetch.queue.backoff.ms`). Whether it passes depends on how far kcat's writing
lags the fetch. With both limits raised kcat ran 0.75-0.80 s in 10 of 10 runs; the
bench runs kcat as a user does, so read each round's ratio next to its kcat rate.

Every stage runs as a child process (the real command for replay), so its figures are
its own: records/s over the wall time (start-up included, as for kcat), events per
CPU-second (the tree's user + system time), the peak RSS of every process, and the
1-minute load average as it ended (a loaded machine is slower: read it next to the
rates). Each rate is also given as a ratio to kcat's and to the bare consume loop's, over
the wall time and per CPU-second. Without --bootstrap a private
local broker is started (deploy/local/install.sh first). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from bench.kafka_ceiling import consume
from bench.machine import machine
from bench.processes import Measured, run_measured
from devenv import LocalKafka
from replay.reader import FETCH_SETTINGS
from replay.session import GC_THRESHOLD, MAX_BATCH
from schemas import VCenterIdentity
from schemas.codec import encode_vsphere
from vcstream.kafka import TopicSpec, ensure_topics
from vcstream.settings.kafka import KafkaSettings

VCENTER = VCenterIdentity("5f2a9c1e-0c3b-4f6e-9d7a-1b2c3d4e5f60", "https://vcsa/sdk", "8.0.3.0")
TEMPLATES = 1000  # distinct encoded events, cycled: encoding 1M through the SDK is slow


Template = tuple[bytes | None, bytes | None, list[tuple[str, str | bytes | None]]]


def templates() -> list[Template]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    made: list[Template] = []
    for key in range(TEMPLATES):
        created = start + timedelta(seconds=key)
        # a different entity per template: record keys spread over every partition
        vm = {"Type": "VirtualMachine", "Value": f"vm-{key}"}
        data = {
            "Key": key,
            "ChainId": key,
            "CreatedTime": created.isoformat().replace("+00:00", "Z"),
            "UserName": "VSPHERE.LOCAL\\Administrator",
            "Vm": {"Name": f"web-{key % 500}", "Vm": vm},
            "FullFormattedMessage": "Virtual machine powered on " + "x" * 700,
        }
        record = encode_vsphere(data, "VmPoweredOnEvent", VCENTER)
        made.append((record.value, record.key, list(record.headers)))
    return made


def preload(bootstrap: str, topic: str, count: int) -> dict[str, float]:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 500_000,
        }
    )
    made = templates()
    began = time.perf_counter()
    for index in range(count):
        value, key, headers = made[index % TEMPLATES]
        while True:
            try:
                producer.produce(topic, value=value, key=key, headers=headers)
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(300)
    elapsed = time.perf_counter() - began
    return {"seconds": round(elapsed, 1), "records_per_s": round(count / elapsed)}


def _figures(name: str, measured: Measured, records: int, **extra: Any) -> dict[str, Any]:
    return {
        "stage": name,
        "records": records,
        "wall_seconds": round(measured.wall_seconds, 2),
        "records_per_s": round(records / measured.wall_seconds),
        "events_per_cpu_second": round(records / max(measured.cpu_seconds, 1e-9)),
        "cpu_seconds": round(measured.cpu_seconds, 2),
        "peak_rss_mb_per_process": sorted(measured.peak_rss_mb.values(), reverse=True),
        "load_average_1m": round(measured.load_1m, 2),
        **extra,
    }


def kcat(bootstrap: str, topic: str, records: int, workdir: Path) -> dict[str, Any]:
    out = workdir / "kcat.out"
    with out.open("wb") as stream:
        measured = run_measured(
            ["kcat", "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-q",
             "-X", "isolation.level=read_committed"],
            stdout=stream,
        )  # fmt: skip
    return _figures("kcat", measured, records, bytes=out.stat().st_size)


def bare_consume(
    bootstrap: str, topic: str, partitions: int, records: int, replay_fetch: bool = False
) -> dict[str, Any]:
    """The bare loop in a child; with `replay_fetch`, with the replay's fetch settings and
    each record's headers and value read (what any replay pays before checking)."""
    measured = run_measured(
        [sys.executable, "-m", "bench.replay", "--consume-only", "--bootstrap", bootstrap,
         "--topic", topic, "--partitions", str(partitions), "--records", str(records),
         *(["--replay-fetch"] if replay_fetch else [])]
    )  # fmt: skip
    name = "confluent_kafka_consume_replay_fetch" if replay_fetch else "confluent_kafka_consume"
    return _figures(name, measured, records)


def replay(
    config: Path,
    topic: str,
    target: str,
    workers: int,
    workdir: Path,
    records: int,
    checkout: Path | None = None,
) -> dict[str, Any]:
    """One `vcstream replay`, from `checkout` (a source tree) if given, else as this
    process would run it."""
    name = target.split(":", maxsplit=1)[0]
    report = workdir / f"report-{name}-{workers}.json"
    measured = run_measured(
        [sys.executable, "-m", "cli", "replay", "--config", str(config), "--topic", topic,
         "--from-beginning", "--to", target, "--report", str(report), "--workers", str(workers),
         "--state", str(workdir / f"state-{name}-{workers}.json")],
        cwd=checkout,
        pythonpath=checkout,
    )  # fmt: skip
    result = json.loads(report.read_text())
    written = result["totals"]["written"]
    if written != records:
        raise RuntimeError(f"replay --to {name} wrote {written} of {records} records")
    return _figures(
        f"replay_{name}_workers_{workers}",
        measured,
        written,
        replay_loop_records_per_s=result["run"]["recordsPerSecond"],
        checksum=result["checksum"],
        **({"checkout": str(checkout)} if checkout is not None else {}),
    )


CEILINGS = (
    ("kcat", "kcat"),
    ("confluent_kafka_consume", "consume"),
    ("confluent_kafka_consume_replay_fetch", "replay_fetch_consume"),
)


def _ratios(runs: list[dict[str, Any]]) -> None:
    """Each stage against the ceilings of its own round: wall rates (what a user waits
    for; on a loaded machine they follow each process's share of the CPU) and events
    per CPU-second (what the stage itself costs, whatever the load)."""
    for ceiling, name in CEILINGS:
        for run in runs:
            measured = next(
                (r for r in runs if r["stage"] == ceiling and r["round"] == run["round"]), None
            )
            if measured is None:
                continue
            run[f"ratio_to_{name}"] = round(run["records_per_s"] / measured["records_per_s"], 3)
            run[f"cpu_ratio_to_{name}"] = round(
                run["events_per_cpu_second"] / measured["events_per_cpu_second"], 3
            )


def _summary(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each stage's median over the rounds (and its extremes, for the spread); with
    several checkouts, a row per stage and checkout (`stage@checkout`)."""
    summary: dict[str, dict[str, Any]] = {}
    figures = ["records_per_s", "events_per_cpu_second", "load_average_1m"]
    figures += [f"{kind}ratio_to_{name}" for _, name in CEILINGS for kind in ("", "cpu_")]
    for row in dict.fromkeys(_row(r) for r in runs):
        mine = [r for r in runs if _row(r) == row]
        summary[row] = {"rounds": len(mine)}
        for figure in figures:
            values = [r[figure] for r in mine if figure in r]
            if values:
                summary[row][figure] = {
                    "median": round(statistics.median(values), 3),
                    "min": min(values),
                    "max": max(values),
                }
        summary[row]["peak_rss_mb_max"] = max(max(r["peak_rss_mb_per_process"]) for r in mine)
    return summary


def _row(run: dict[str, Any]) -> str:
    return f"{run['stage']}@{run['checkout']}" if "checkout" in run else str(run["stage"])


def _consume_only(args: argparse.Namespace) -> None:
    """The bare consume loop, in a child process of its own (see `bare_consume`)."""
    if not args.replay_fetch:
        consume(args.bootstrap, args.topic, args.partitions, args.records)
        return
    consumer = Consumer(
        {"bootstrap.servers": args.bootstrap, "group.id": f"bench-{uuid.uuid4()}",
         "enable.auto.commit": False, "isolation.level": "read_committed", **FETCH_SETTINGS}
    )  # fmt: skip
    consumer.assign([TopicPartition(args.topic, p, 0) for p in range(args.partitions)])
    # the collector as a replay sets it (replay.session.replay_range): at the default
    # threshold it ran every ~60 messages of a batch, and the loop measured it instead
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
    seen = 0
    while seen < args.records:
        # no more than is left: consume() waits out its timeout for a batch it cannot fill
        for message in consumer.consume(min(MAX_BATCH, args.records - seen), timeout=1.0):
            if message.error() is None:
                message.headers()
                message.value()
                seen += 1
    consumer.close()


def _round(
    args: argparse.Namespace,
    bootstrap: str,
    topic: str,
    config: Path,
    stages: list[str],
    workdir: Path,
    checkouts: list[Path | None],
) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    if "kcat" in stages:
        _fresh_disk(workdir)
        runs.append(kcat(bootstrap, topic, args.records, workdir))
    if "consume" in stages:
        runs.append(bare_consume(bootstrap, topic, args.partitions, args.records))
        runs.append(bare_consume(bootstrap, topic, args.partitions, args.records, True))
    counts = sorted(
        {int(n) for n in args.worker_counts.split(",")} if args.worker_counts else {1, args.workers}
    )
    for name in ("file", "audit"):
        if name not in stages:
            continue
        for workers in counts:
            target = "audit" if name == "audit" else f"file:{workdir / 'replay.jsonl'}"
            for checkout in checkouts:
                _fresh_disk(workdir)
                runs.append(replay(config, topic, target, workers, workdir, args.records, checkout))
    _fresh_disk(workdir)
    return runs


def _fresh_disk(workdir: Path) -> None:
    """Before a timed run, outside its time: the earlier runs' outputs removed and their
    writes on disk. A replay into a file that replaced the one before freed that file's
    278 MB inside its own time, and the writeback of the run before fell into the next:
    the second of two replays in a round was the slower in 10 rounds of 10 (two A/B runs
    of 6 and 4 rounds, the checkouts in opposite orders: 0.03-0.9 s slower)."""
    (workdir / "replay.jsonl").unlink(missing_ok=True)
    (workdir / "kcat.out").unlink(missing_ok=True)
    shutil.rmtree(workdir / "audit", ignore_errors=True)
    os.sync()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2, help="N for the --workers runs")
    parser.add_argument("--stages", default="kcat,consume,file,audit")
    parser.add_argument("--rounds", type=int, default=1, help="every stage R times, in turns")
    parser.add_argument("--bootstrap", help="an existing broker; default: start a local one")
    parser.add_argument(
        "--worker-counts", help="the --workers values replay runs with (default: 1,WORKERS)"
    )
    parser.add_argument(
        "--checkout",
        action="append",
        type=Path,
        help="a source tree to run the replays from (repeatable, in turns; default: this one)",
    )
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--consume-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--replay-fetch", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.consume_only:
        _consume_only(args)
        return

    checkouts: list[Path | None] = [c.resolve() for c in args.checkout or []] or [None]
    workdir = Path(tempfile.mkdtemp(prefix="bench-replay-"))
    broker = None
    bootstrap = args.bootstrap
    if bootstrap is None:
        broker = LocalKafka(workdir / "kafka", heap="1g").start()
        bootstrap = broker.bootstrap_servers
    try:
        topic = f"bench.replay.{uuid.uuid4().hex[:8]}"
        ensure_topics(
            KafkaSettings(bootstrapServers=bootstrap),
            [TopicSpec(topic, partitions=args.partitions)],
        )
        config = workdir / "vcstream.yaml"
        config.write_text(
            f"kafka:\n  bootstrapServers: {bootstrap}\n"
            f"sinks:\n  audit:\n    backend: files\n    files:\n"
            f"      directory: {workdir / 'audit'}\n"
        )
        stages = args.stages.split(",")
        result: dict[str, Any] = {
            "benchmark": "replay",
            "records": args.records,
            "partitions": args.partitions,
            "preload": preload(bootstrap, topic, args.records),
            "load_average_1m_at_start": round(os.getloadavg()[0], 2),
        }
        runs: list[dict[str, Any]] = []
        for round_index in range(args.rounds):
            for run in _round(args, bootstrap, topic, config, stages, workdir, checkouts):
                runs.append({"round": round_index, **run})
        _ratios(runs)
        result["stages"] = runs
        result["summary"] = _summary(runs)
        result["machine"] = machine()
        print(json.dumps(result, indent=2))
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
