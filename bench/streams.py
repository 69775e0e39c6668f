"""Stream processors: events/s through enrich + route on one worker with the input
pre-loaded, p99 added latency, peak RSS, and the ratio to bench.kafka_ceiling's raw
consume rate on the same topic.

    .venv/bin/python -m bench.streams [--events 20000] [--trickle 1000] [--bootstrap HOST:PORT]
                                      [--stateful]

One worker process (`vcstream streams worker`) reads a pre-loaded raw topic: a quarter
alarm status changes (joined with one of 50 definitions, routed to alarms and audit),
the rest VM events (routed to audit, and by the example processor to vm-power).
Throughput is counted from the worker's readiness to its last audit record. Added
latency is measured afterwards on a trickle of events at a steady rate: the audit
record's broker timestamp minus its input's. The worker's CPU time over the throughput
phase is reported too (`events_per_cpu_s`): on a shared machine it is the steadier
figure. `--stateful` switches on the three built-in stateful processors (duplicates,
maintenance, alarmStorm): a table write per event, the cost of state. Prints one JSON
object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Consumer, Producer, TopicPartition

from bench.kafka_ceiling import consume as ceiling_consume
from devenv import LocalKafka
from devenv.process import REPO, free_port
from schemas import VCenterIdentity, avro
from schemas.codec import encode_vsphere
from vcstream.kafka import client_config
from vcstream.settings import Settings, load_settings

VC = VCenterIdentity("b0b0b0b0-0000-4000-8000-000000000001", "https://vc.bench/sdk", "8.0.3.0")
ALARMS = 50
PARTITIONS = 6


def event(key: int) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    vm = {"Name": f"vm{key % 500}", "Vm": {"Type": "VirtualMachine", "Value": f"vm-{key % 500}"}}
    body: dict[str, Any] = {
        "Key": key,
        "ChainId": key,
        "CreatedTime": "2026-11-22T20:41:57.891Z",
        "UserName": "VSPHERE.LOCAL\\Administrator",
        "Vm": vm,
        "FullFormattedMessage": "x" * 400,
    }
    if key % 4 == 0:
        alarm = f"alarm-{key % ALARMS}"
        body |= {"Alarm": {"Name": alarm, "Alarm": {"Type": "Alarm", "Value": alarm}}}
        body |= {"From": "green", "To": "red" if key % 8 == 0 else "green"}
        record = encode_vsphere(body, "AlarmStatusChangedEvent", VC)
    else:
        record = encode_vsphere(body, "VmPoweredOnEvent", VC)
    return record.value, record.key, record.headers


def definitions() -> list[tuple[bytes, bytes]]:
    out = []
    for index in range(ALARMS):
        alarm = f"alarm-{index}"
        info = {"Name": alarm, "Key": alarm, "Alarm": {"Type": "Alarm", "Value": alarm}}
        value = avro.encode(
            "alarm_definition",
            {
                "vcenterUuid": VC.instance_uuid,
                "source": VC.source,
                "alarm": alarm,
                "name": alarm,
                "systemName": None,
                "description": "bench",
                "enabled": True,
                "entityType": "Folder",
                "entityValue": "group-d1",
                "lastModifiedTime": 0,
                "lastModifiedUser": None,
                "expressionSummary": [],
                "alarmInfo": json.dumps(info),
            },
        )
        out.append((f"{VC.instance_uuid}/{alarm}".encode(), value))
    return out


def produce(settings: Settings, topic: str, first: int, count: int, rate: float = 0) -> None:
    producer = Producer(client_config(settings.kafka, **{"linger.ms": 5}))
    start = time.monotonic()
    for index, key in enumerate(range(first, first + count)):
        value, record_key, headers = event(key)
        producer.produce(topic, value=value, key=record_key, headers=list(headers))
        producer.poll(0)
        if rate:
            delay = start + index / rate - time.monotonic()
            if delay > 0:
                producer.flush(1)
                time.sleep(delay)
    producer.flush(60)


def total_records(settings: Settings, topic: str) -> int:
    consumer = Consumer(client_config(settings.kafka, **{"group.id": "bench-watermarks"}))
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        total = 0
        for partition in metadata.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)
            total += high - low
        return int(total)
    finally:
        consumer.close()


def timestamps_by_id(settings: Settings, topic: str, count: int) -> dict[str, int]:
    consumer = Consumer(
        client_config(
            settings.kafka,
            **{"group.id": f"bench-{uuid.uuid4().hex}", "auto.offset.reset": "earliest"},
        )
    )
    consumer.subscribe([topic])
    found: dict[str, int] = {}
    deadline = time.monotonic() + 60
    try:
        while len(found) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            ce_id = dict(message.headers() or []).get("ce_id") or b""
            ce_id = ce_id.decode() if isinstance(ce_id, bytes) else ce_id
            found[ce_id] = message.timestamp()[1]
    finally:
        consumer.close()
    return found


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (all its threads)."""
    # fields after the command name, which is in parentheses and may hold spaces
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


STATEFUL = {
    "duplicates": {"enabled": True},
    "maintenance": {"enabled": True},
    "alarmStorm": {"enabled": True},
}


def run(
    bootstrap: str, workdir: Path, events: int, trickle: int, stateful: bool = False
) -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:8]
    port = free_port()
    config = {
        "kafka": {"bootstrapServers": bootstrap},
        "topics": {
            name: f"bench.{name}.{suffix}"
            for name in ("events", "checkpoints", "alarmDefinitions", "alarms", "audit")
        }
        | {"deadLetter": f"bench.dlq.{suffix}"},
        "producer": {"rawTopic": {"partitions": PARTITIONS}},
        "streams": {"appId": f"bench-{suffix}", "dataDir": str(workdir / "data")}
        | (STATEFUL if stateful else {}),
        "metrics": {"host": "127.0.0.1", "port": port},
        "logging": {"level": "WARNING"},
    }
    path = workdir / "bench.yaml"
    path.write_text(yaml.safe_dump(config))
    settings = load_settings(path)
    topics = settings.topics
    from streams.topics import prepare_topics

    prepare_topics(settings, ["vcenter.vm-power"])
    producer = Producer(client_config(settings.kafka))
    for key, value in definitions():
        producer.produce(topics.alarm_definitions, value=value, key=key)
    producer.flush(30)
    produce(settings, topics.events, 1, events)
    ceiling = ceiling_consume(bootstrap, topics.events, PARTITIONS, events)

    worker = subprocess.Popen(
        [sys.executable, "-m", "cli", "streams", "worker", "--config", str(path)],
        cwd=REPO,
        stdout=(workdir / "worker.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        while not healthy(port):
            if worker.poll() is not None:
                raise RuntimeError((workdir / "worker.log").read_text()[-3000:])
            time.sleep(0.1)
        ready, cpu_at_ready = time.monotonic(), cpu_seconds(worker.pid)
        while total_records(settings, topics.audit) < events:
            time.sleep(0.2)
        elapsed = time.monotonic() - ready
        cpu = cpu_seconds(worker.pid) - cpu_at_ready
        load = os.getloadavg()[0]

        first = events + 1
        produce(settings, topics.events, first, trickle, rate=500)
        inputs = timestamps_by_id(settings, topics.events, events + trickle)
        outputs = timestamps_by_id(settings, topics.audit, events + trickle)
        trickle_ids = [
            encode_vsphere_id(key) for key in range(first, first + trickle) if key % 4 != 0
        ]
        latencies = sorted(
            (outputs[i] - inputs[i]) / 1000 for i in trickle_ids if i in outputs and i in inputs
        )
        rss = peak_rss_mb(worker.pid)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(30)
            stopped = True
        except subprocess.TimeoutExpired:
            # the figures are taken: report a worker that does not stop, do not lose them
            stopped = False
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)
    rate = events / elapsed
    return {
        "benchmark": "streams",
        "events": events,
        "partitions": PARTITIONS,
        "alarm_share": 0.25,
        "stateful": stateful,
        "events_per_s": round(rate),
        "elapsed_s": round(elapsed, 2),
        "added_latency_ms": {
            "samples": len(latencies),
            "p50": round(latencies[len(latencies) // 2] * 1000, 1) if latencies else None,
            "p99": round(latencies[int(len(latencies) * 0.99)] * 1000, 1) if latencies else None,
            "trickle_rate_per_s": 500,
        },
        # the machine is shared: CPU time per event says what the worker costs whatever
        # else runs, and events per CPU second what one dedicated core would do
        "worker_cpu_s": round(cpu, 2),
        "events_per_cpu_s": round(events / cpu) if cpu else None,
        "load_average_1m": round(load, 2),
        "peak_rss_mb": round(rss, 1),
        "stopped_within_30s_of_sigterm": stopped,
        "kafka_ceiling_consume_per_s": round(ceiling["records_per_s"]),
        "ratio_to_ceiling": round(rate / ceiling["records_per_s"], 4),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }


def encode_vsphere_id(key: int) -> str:
    headers = event(key)[2]
    return dict(headers)["ce_id"].decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--trickle", type=int, default=1000)
    parser.add_argument("--bootstrap", help="an existing broker; default: a private one")
    parser.add_argument("--stateful", action="store_true", help="the built-in stateful ones on")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-streams-") as tmp:
        workdir = Path(tmp)
        if args.bootstrap:
            result = run(args.bootstrap, workdir, args.events, args.trickle, args.stateful)
        else:
            broker = LocalKafka(workdir / "kafka").start()
            try:
                bootstrap = broker.bootstrap_servers
                result = run(bootstrap, workdir, args.events, args.trickle, args.stateful)
            finally:
                broker.stop()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
