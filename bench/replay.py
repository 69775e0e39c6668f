"""Replay throughput: records/s replayed from a pre-loaded topic into audit files (and
into JSON lines, for comparison), peak RSS of the replay process, and the ratio to the
raw consume ceiling of bench.kafka_ceiling on the same topic.

    .venv/bin/python -m bench.replay [--records 1000000] [--partitions 6] [--bootstrap H:P]

The replay runs as the real command (`python -m vcstream replay ...`) in a child
process, so the RSS is the command's own. Without --bootstrap a private local broker
is started (deploy/local/install.sh first). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from bench.kafka_ceiling import consume
from schemas import VCenterIdentity
from schemas.codec import encode_vsphere
from vcstream.devenv import LocalKafka
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
        data = {
            "Key": key,
            "ChainId": key,
            "CreatedTime": created.isoformat().replace("+00:00", "Z"),
            "UserName": "VSPHERE.LOCAL\\Administrator",
            "Vm": {"Name": f"web-{key % 50}", "Vm": {"Type": "VirtualMachine", "Value": "vm-1"}},
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


def stage_costs(count: int = 5000) -> dict[str, float]:
    """Microseconds per record of each stage a replay into audit files runs, in this
    process on the bench's records: where a replay's time goes, without a profiler."""
    import io
    from dataclasses import replace

    import fastavro

    from replay.tally import record_digest
    from schemas import KafkaRecord, avro, decode
    from sinks.audit.record import GENESIS, audit_record, chain
    from sinks.base import SinkEvent

    made = templates()
    records = []
    for offset in range(count):
        value, key, headers = made[offset % TEMPLATES]
        raw = [(name, text) for name, text in headers if isinstance(text, bytes)]
        record = KafkaRecord(value, key, raw)
        records.append(replace(record, topic="t", partition=0, offset=offset, timestamp_ms=0))
    costs: dict[str, float] = {}

    def timed(name: str, stage: Any) -> Any:
        began = time.perf_counter()
        result = stage()
        costs[name] = round((time.perf_counter() - began) / count * 1e6, 1)
        return result

    events = timed("decode", lambda: [decode(r) for r in records])
    now = datetime.now(UTC)
    rows = timed(
        "audit_record",
        lambda: [audit_record(SinkEvent(e, r), now) for e, r in zip(events, records, strict=True)],
    )
    linked = timed("hash_chain", lambda: list(chain(rows, GENESIS)))
    timed(
        "avro_deflate",
        lambda: fastavro.writer(io.BytesIO(), avro.load("audit_record"), linked, codec="deflate"),
    )
    timed(
        "report_checksum",
        lambda: [record_digest(0, i, str(e.get_id())) for i, e in enumerate(events)],
    )
    return costs


def _high_water_kb(pid: int) -> int:
    """VmHWM of a live process (its peak resident set since exec), 0 once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def replay(config: Path, topic: str, target: str, workdir: Path) -> dict[str, Any]:
    report = workdir / f"report-{target.split(':', maxsplit=1)[0]}.json"
    began = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "vcstream", "replay", "--config", str(config), "--topic", topic,
         "--from-beginning", "--to", target, "--report", str(report),
         "--state", str(workdir / "state.json")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    # the peak RSS is the child's own VmHWM, read while it runs: wait4's ru_maxrss
    # carries over the high-water mark of the forked parent (this process, holding the
    # preloaded producer's buffers) across exec, and reported the parent's size
    peak_kb = 0
    while child.poll() is None:
        peak_kb = max(peak_kb, _high_water_kb(child.pid))
        time.sleep(0.2)
    wall = time.perf_counter() - began
    if child.returncode != 0:
        raise RuntimeError(f"replay exited {child.returncode}")
    result = json.loads(report.read_text())
    written = result["totals"]["written"]
    return {
        "target": target.split(":", maxsplit=1)[0],
        "written": written,
        "wall_seconds": round(wall, 1),
        "records_per_s": round(written / wall),
        "replay_loop_records_per_s": result["run"]["recordsPerSecond"],
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "checksum": result["checksum"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--bootstrap", help="an existing broker; default: start a local one")
    parser.add_argument("--targets", default="audit,file", help="comma-separated: audit, file")
    args = parser.parse_args()

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
        result: dict[str, Any] = {
            "benchmark": "replay",
            "records": args.records,
            "partitions": args.partitions,
            "preload": preload(bootstrap, topic, args.records),
        }
        ceiling = consume(bootstrap, topic, args.partitions, args.records)
        result["kafka_ceiling_consume_records_per_s"] = round(ceiling["records_per_s"])
        runs = []
        for name in args.targets.split(","):
            target = "audit" if name == "audit" else f"file:{workdir / 'replay.jsonl'}"
            run = replay(config, topic, target, workdir)
            run["ratio_to_ceiling"] = round(run["records_per_s"] / ceiling["records_per_s"], 3)
            runs.append(run)
        result["replays"] = runs
        result["stage_us_per_record"] = stage_costs()
        result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
        print(json.dumps(result, indent=2))
    finally:
        if broker is not None:
            broker.stop()
        # a million records leave gigabytes of log, audit files and JSON lines behind
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
