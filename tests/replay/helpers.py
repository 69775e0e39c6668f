"""Filling topics with real vcstream records for replay tests."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Consumer, Producer, TopicPartition

from devenv import LocalKafka
from schemas import KafkaRecord, VCenterIdentity
from schemas.codec import encode_vsphere
from vcstream.kafka import TopicSpec, ensure_topics
from vcstream.settings import Settings

VCENTER = VCenterIdentity(
    instance_uuid="5f2a9c1e-0c3b-4f6e-9d7a-1b2c3d4e5f60",
    source="https://vcsa.example.com/sdk",
    api_version="8.0.3.0",
)
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
CLASSES = ("VmPoweredOnEvent", "VmPoweredOffEvent", "AlarmStatusChangedEvent")


def settings_for(kafka: LocalKafka, **sections: Any) -> Settings:
    return Settings(kafka={"bootstrapServers": kafka.bootstrap_servers}, **sections)


def audit_files(directory: Path, **files: Any) -> dict[str, Any]:
    """The `sinks` section for an audit store in files under `directory` (and any other
    `files` settings, e.g. rotateInterval)."""
    return {"audit": {"backend": "files", "files": {"directory": str(directory), **files}}}


def write_config(kafka: LocalKafka, path: Path, audit: Path, **files: Any) -> Path:
    """A configuration file for the command: this broker, audit files under `audit`."""
    config = {
        "kafka": {"bootstrapServers": kafka.bootstrap_servers},
        "sinks": audit_files(audit, **files),
    }
    path.write_text(yaml.safe_dump(config))
    return path


def event_data(key: int, created: datetime) -> dict[str, Any]:
    vm = f"vm-{key % 7}"
    return {
        "Key": key,
        "ChainId": key,
        "CreatedTime": created.isoformat().replace("+00:00", "Z"),
        "UserName": "VSPHERE.LOCAL\\Administrator",
        "Vm": {"Name": f"web-{vm}", "Vm": {"Type": "VirtualMachine", "Value": vm}},
        "FullFormattedMessage": f"event {key}",
    }


def fill_topic(
    kafka: LocalKafka,
    topic: str,
    count: int,
    partitions: int = 1,
    start_key: int = 0,
    poison_every: int = 0,
    time_of: Any = None,
) -> list[datetime]:
    """`count` events, keys start_key.., record timestamps one minute apart from EPOCH.

    Events go round-robin over partitions; every `poison_every`-th record (if set) is
    not a CloudEvent. Returns the record timestamps in produce order.
    """
    # the records are dated 2026-01-01: under the broker's default retention (7 days) its
    # periodic check would delete them mid-test, so these topics keep records forever
    ensure_topics(
        settings_for(kafka).kafka, [TopicSpec(topic, partitions=partitions, retention=-1)]
    )
    # idempotence keeps each partition in produce order when a send is retried (a new
    # topic's first sends often are), which the offset-range tests rely on
    producer = Producer(
        {"bootstrap.servers": kafka.bootstrap_servers, "linger.ms": 5, "enable.idempotence": True}
    )
    stamps = []
    for index in range(count):
        key = start_key + index
        created = time_of(key) if time_of else EPOCH + timedelta(minutes=key)
        stamps.append(created)
        ms = int(created.timestamp() * 1000)
        partition = index % partitions
        if poison_every and index % poison_every == poison_every - 1:
            producer.produce(topic, value=b"not an event", partition=partition, timestamp=ms)
            continue
        record = encode_vsphere(event_data(key, created), CLASSES[key % len(CLASSES)], VCENTER)
        headers: list[tuple[str, str | bytes | None]] = list(record.headers)
        producer.produce(
            topic,
            value=record.value,
            key=record.key,
            headers=headers,
            partition=partition,
            timestamp=ms,
        )
    producer.flush(30)
    return stamps


def write_in_transactions(kafka: LocalKafka, topic: str, transactions: int, each: int) -> int:
    """`transactions` committed transactions of `each` events: a marker after each."""
    producer = Producer(
        {"bootstrap.servers": kafka.bootstrap_servers, "transactional.id": uuid.uuid4().hex}
    )
    producer.init_transactions(30)
    key = 1000
    for _ in range(transactions):
        producer.begin_transaction()
        for _ in range(each):
            record = encode_vsphere(event_data(key, EPOCH), CLASSES[key % len(CLASSES)], VCENTER)
            headers: list[tuple[str, str | bytes | None]] = list(record.headers)
            producer.produce(topic, value=record.value, key=record.key, headers=headers)
            key += 1
        producer.commit_transaction(30)
    return transactions * each


def committed(kafka: LocalKafka, group: str, topic: str, partitions: Sequence[int]) -> list[int]:
    consumer = Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": group})
    try:
        found = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return [tp.offset for tp in found]
    finally:
        consumer.close()


class RecordMessage:
    """A record read through confluent_kafka.Message's methods, for the replay loop's
    checks without a broker (`replay.targets.base.Message`)."""

    def __init__(self, record: KafkaRecord, raw_headers: list[Any] | None = None) -> None:
        self._record = record
        # a header without a value is None in confluent-kafka (KafkaRecord makes it b"")
        self._headers = list(record.headers) if raw_headers is None else raw_headers

    def error(self) -> None:
        return None

    def partition(self) -> int | None:
        return self._record.partition

    def offset(self) -> int | None:
        return self._record.offset

    def timestamp(self) -> tuple[int, int]:
        ms = self._record.timestamp_ms
        return (0, -1) if ms is None else (1, ms)

    def headers(self) -> list[Any] | None:
        return self._headers or None

    def value(self) -> bytes | None:
        return self._record.value

    def key(self) -> bytes | None:
        return self._record.key

    def topic(self) -> str | None:
        return self._record.topic
