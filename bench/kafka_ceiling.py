"""The ceiling every other benchmark is compared with: raw confluent-kafka produce and
consume rates on the local broker, for records shaped like vcstream's (about 1 KB of
JSON data and the nine `ce_*` headers of a binary-mode CloudEvent).

    .venv/bin/python -m bench.kafka_ceiling [--records 200000] [--bootstrap HOST:PORT]

Without --bootstrap it starts a private local broker (deploy/local/install.sh first).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from bench.machine import machine
from devenv import LocalKafka
from vcstream.kafka import TopicSpec, ensure_topics
from vcstream.settings.kafka import KafkaSettings

HEADERS: list[tuple[str, str | bytes | None]] = [
    ("ce_specversion", b"1.0"),
    ("ce_id", b"7d0a5b0e-8f1c-5d49-9a7e-3c1f0b9d2e11"),
    ("ce_source", b"https://vcenter.example.com/sdk"),
    ("ce_type", b"com.vmware.vsphere.VmPoweredOnEvent.v0"),
    ("ce_time", b"2026-11-22T20:41:57.891Z"),
    ("ce_subject", b"VmPoweredOnEvent"),
    ("ce_eventclass", b"event"),
    ("ce_vsphereapiversion", b"8.0.3.0"),
    ("content-type", b"application/json"),
]


def sample_value(size: int = 1024) -> bytes:
    data = {
        "Key": 9902,
        "ChainId": 9895,
        "CreatedTime": "2026-11-22T20:41:57.891Z",
        "UserName": "VSPHERE.LOCAL\\Administrator",
        "Vm": {"Name": "web-01", "Vm": {"Type": "VirtualMachine", "Value": "vm-42"}},
        "FullFormattedMessage": "",
    }
    raw = json.dumps(data)
    data["FullFormattedMessage"] = "x" * max(0, size - len(raw))
    return json.dumps(data).encode()


def produce(bootstrap: str, topic: str, count: int, value: bytes) -> dict[str, float]:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "batch.size": 1_000_000,
            "compression.type": "lz4",
        }
    )
    began = time.perf_counter()
    for index in range(count):
        key = f"vc-uuid/VirtualMachine:vm-{index % 500}".encode()
        while True:
            try:
                producer.produce(topic, value=value, key=key, headers=HEADERS)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.flush(120)
    elapsed = time.perf_counter() - began
    return {"records_per_s": count / elapsed, "mb_per_s": count * len(value) / elapsed / 1e6}


def consume(bootstrap: str, topic: str, partitions: int, count: int) -> dict[str, float]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"ceiling-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "fetch.max.bytes": 52_428_800,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    seen = 0
    size = 0
    began = time.perf_counter()
    while seen < count:
        # no more than is left: consume() waits out its timeout for a batch it cannot fill
        for message in consumer.consume(min(10_000, count - seen), timeout=1.0):
            if message.error():
                continue
            seen += 1
            size += len(message.value() or b"")
    elapsed = time.perf_counter() - began
    consumer.close()
    return {"records_per_s": seen / elapsed, "mb_per_s": size / elapsed / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--bootstrap", help="an existing broker; default: start a local one")
    args = parser.parse_args()

    broker = None
    workdir = Path(tempfile.mkdtemp(prefix="kafka-ceiling-"))
    bootstrap = args.bootstrap
    if bootstrap is None:
        broker = LocalKafka(workdir, heap="1g").start()
        bootstrap = broker.bootstrap_servers
    try:
        topic = f"ceiling.{uuid.uuid4().hex[:8]}"
        ensure_topics(
            KafkaSettings(bootstrapServers=bootstrap),
            [TopicSpec(topic, partitions=args.partitions)],
        )
        value = sample_value()
        result: dict[str, Any] = {
            "benchmark": "kafka_ceiling",
            "records": args.records,
            "record_bytes": len(value),
            "headers": len(HEADERS),
            "partitions": args.partitions,
            "produce": produce(bootstrap, topic, args.records, value),
            "consume": consume(bootstrap, topic, args.partitions, args.records),
            "machine": machine(),
        }
        if broker is not None:
            result["broker"] = {
                "start_seconds": round(broker.start_seconds, 2),
                "peak_rss_mb": round(broker.child.rss_bytes() / 2**20, 1),
            }
        print(json.dumps(result, indent=2))
    finally:
        if broker is not None:
            broker.stop()


if __name__ == "__main__":
    main()
