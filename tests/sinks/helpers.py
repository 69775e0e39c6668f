"""Shared steps of the sink tests: events into Kafka, a sink run, dead letters out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from schemas.codec import encode_vsphere
from schemas.deadletter import error_context
from schemas.record import KafkaRecord
from schemas.vsphere import VCenterIdentity
from sinks import registry
from sinks.runtime import SinkRunner
from vcstream.kafka import TopicSpec, ensure_topics
from vcstream.settings import Settings

VCENTER = VCenterIdentity(
    instance_uuid="5a1b1f6c-0c4d-4a8e-9b43-3e2f7c9d0a11",
    source="https://vc01.example.com/sdk",
    api_version="8.0.3.0",
    name="vc01",
)
BASE_TIME = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def vm_event(key: int, vm: int = 1, class_name: str = "VmPoweredOnEvent") -> dict[str, Any]:
    return {
        "Key": key,
        "ChainId": key,
        "CreatedTime": (BASE_TIME + timedelta(seconds=key)).isoformat().replace("+00:00", "Z"),
        "UserName": "VSPHERE.LOCAL\\Administrator",
        "FullFormattedMessage": f"vm-{vm} on host-1 is powered on",
        "Vm": {"Name": f"vm{vm}", "Vm": {"Type": "VirtualMachine", "Value": f"vm-{vm}"}},
        "Host": {"Name": "esx01", "Host": {"Type": "HostSystem", "Value": "host-1"}},
    }


def vm_records(count: int, vms: int = 4, start: int = 1) -> list[KafkaRecord]:
    return [
        encode_vsphere(vm_event(key, vm=key % vms), "VmPoweredOnEvent", VCENTER)
        for key in range(start, start + count)
    ]


def produce(bootstrap: str, topic: str, records: list[KafkaRecord], partitions: int = 1) -> None:
    ensure_topics_for(bootstrap, [topic], partitions)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for record in records:
        producer.produce(
            topic,
            value=record.value,
            key=record.key,
            headers=list(record.headers),
        )
    assert producer.flush(30) == 0


def ensure_topics_for(bootstrap: str, topics: list[str], partitions: int = 1) -> None:
    settings = Settings(kafka={"bootstrapServers": bootstrap})
    ensure_topics(settings.kafka, [TopicSpec(name, partitions) for name in topics])


def sink_settings(bootstrap: str, kind: str, dead_letter: str, **section: Any) -> Settings:
    section.setdefault("delivery", {})
    section["delivery"].setdefault("deadLetterTopic", dead_letter)
    return Settings(
        kafka={"bootstrapServers": bootstrap},
        sinks={kind: section},
        metrics={"enabled": False},
    )


def make_runner(kind: str, settings: Settings) -> SinkRunner:
    ensure_topics_for(
        settings.kafka.bootstrap_servers, [registry.dead_letter_topic(kind, settings)]
    )
    return SinkRunner(
        registry.create_sink(kind, settings),
        settings.kafka,
        topics=registry.source_topics(kind, settings),
        group_id=registry.group_id(kind, settings),
        dead_letter_topic=registry.dead_letter_topic(kind, settings),
    )


def run_until(runner: SinkRunner, done: Callable[[], bool], timeout: float = 60) -> None:
    """Run the sink until `done()` holds (checked between polls), then stop it gracefully."""

    async def main() -> None:
        stop = asyncio.Event()
        deadline = time.monotonic() + timeout

        async def watch() -> None:
            while not done():
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            stop.set()

        watcher = asyncio.create_task(watch())
        await runner.run(stop)
        await watcher

    asyncio.run(main())
    assert done(), f"condition not reached in {timeout}s: {runner.report}"


def settled(runner: SinkRunner, count: int) -> Callable[[], bool]:
    report = runner.report
    return lambda: report.delivered + report.filtered + report.dead_lettered >= count


def read_all(bootstrap: str, topic: str, timeout: float = 10) -> list[KafkaRecord]:
    """Every record in a single-partition topic, from the beginning."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "test-reader", "enable.auto.commit": False}
    )
    _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=timeout)
    consumer.assign([TopicPartition(topic, 0, 0)])
    found: list[KafkaRecord] = []
    deadline = time.monotonic() + timeout
    while len(found) < high and time.monotonic() < deadline:
        for message in consumer.consume(100, 0.5):
            if message.error() is None:
                found.append(KafkaRecord.from_confluent(message))
    consumer.close()
    return found


def committed(bootstrap: str, group: str, topic: str, partition: int = 0) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    [tp] = consumer.committed([TopicPartition(topic, partition)], timeout=10)
    consumer.close()
    return int(tp.offset)


def dead_letter_contexts(bootstrap: str, topic: str) -> list[dict[str, str]]:
    return [error_context(record) for record in read_all(bootstrap, topic)]
