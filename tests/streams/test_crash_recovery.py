"""kill -9 of a worker, and workers joining and leaving mid-stream: nothing is lost, the
definitions table is back after a restart (rebuilt from the compacted topic), and
repeats are detectable by id.

Both once lost an early event now and then: faust-streaming drops records fetched while
a worker recovers its tables (streams.transport), and with nothing committed yet
nothing brought them back. Each test starts with no committed offset, on purpose."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

import schemas
from schemas.codec import encode_vsphere
from schemas.record import KafkaRecord
from schemas.vsphere import VCenterIdentity, derived_id
from streams.api import data_of
from tests.role_process import wait_for
from tests.streams.helpers import (
    StreamsWorker,
    consume,
    decoded,
    definition_record,
    produce,
    streams_config,
    throttled_config,
)
from vcstream.kafka import client_config
from vcstream.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

VC = VCenterIdentity("99999999-2222-3333-4444-555555555555", "https://vc.crash/sdk", "8.0.3.0")
BATCH = 2000


def events(first_key: int, count: int) -> list[KafkaRecord]:
    records = []
    for key in range(first_key, first_key + count):
        vm = {"Name": f"vm{key % 40}", "Vm": {"Type": "VirtualMachine", "Value": f"vm-{key % 40}"}}
        if key % 3 == 0:
            ref = {"Name": "cpu", "Alarm": {"Type": "Alarm", "Value": "alarm-7"}}
            data = {"Alarm": ref, "From": "green", "To": "red"}
            name = "AlarmStatusChangedEvent"
        else:
            data, name = {}, "VmPoweredOnEvent"
        body = {"Key": key, "CreatedTime": "2025-03-01T10:00:00Z", "Vm": vm, **data}
        records.append(encode_vsphere(body, name, VC))
    return records


def expected_audit_id(record: KafkaRecord) -> str:
    event = schemas.decode(record)
    if event.get_subject() == "AlarmStatusChangedEvent":
        return derived_id(event.get_id(), "enrich_alarms")
    return event.get_id()


def audit_id(record: KafkaRecord) -> str:
    value = record.header("ce_id")
    return value.decode() if value else ""


def written(settings: Settings, topic: str) -> int:
    consumer = Consumer(client_config(settings.kafka, **{"group.id": "watermarks"}))
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        low1, high1 = consumer.get_watermark_offsets(TopicPartition(topic, 1), timeout=10)
        return int(high - low + high1 - low1)
    finally:
        consumer.close()


def test_worker_killed_mid_stream_loses_nothing_and_restores_the_table(
    kafka, topic_name, tmp_path: Path
):
    config, env = throttled_config(tmp_path, kafka.bootstrap_servers, topic_name)
    worker = StreamsWorker(config, env=env)
    settings = worker.settings
    try:
        worker.start()
        first = feed_first_batch(settings, output_before_going_on=100)
        worker.kill()
        done_before_kill = written(settings, settings.topics.audit)

        second = events(BATCH + 1, BATCH)
        produce(settings, settings.topics.events, second)
        worker.start()
        audit = audit_output(settings, first + second)
    finally:
        worker.stop()

    repeats = assert_all_delivered_once_or_repeated(audit, first + second)
    assert done_before_kill < BATCH  # the kill did land mid-stream
    # Repeats carry the same id (checked above). An event is written at most three
    # times: before the kill, after the restart, and once more when the killed member's
    # session expires, a rebalance that re-reads what the new worker had not committed.
    assert max(repeats.values()) <= 3
    # after the restart alarms are still enriched: the table came back from the topic
    alarms_after_restart = [
        event for event in audit[done_before_kill:] if "AlarmStatusChangedEvent" in event.get_type()
    ]
    assert alarms_after_restart
    assert all(data_of(e)["AlarmInfo"]["Name"] == "cpu" for e in alarms_after_restart)


def test_workers_joining_and_dying_mid_stream_lose_nothing(kafka, topic_name, tmp_path: Path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first_config = streams_config(tmp_path / "a", kafka.bootstrap_servers, topic_name)
    # same topics and app id (one consumer group), its own metrics port and data dir
    second_config = streams_config(tmp_path / "b", kafka.bootstrap_servers, topic_name)
    first, second = StreamsWorker(first_config), StreamsWorker(second_config)
    settings = first.settings
    try:
        first.start()
        early = feed_first_batch(settings, output_before_going_on=50)
        second.start()  # a rebalance while the first worker is mid-stream
        late = events(BATCH + 1, BATCH)
        produce(settings, settings.topics.events, late)
        wait_for(lambda: written(settings, settings.topics.audit) >= BATCH, 60, "more output")
        second.kill()  # and another, once the group notices it is gone
        audit = audit_output(settings, early + late)
    finally:
        second.stop()
        first.stop()

    assert_all_delivered_once_or_repeated(audit, early + late)


def feed_first_batch(settings: Settings, output_before_going_on: int) -> list[KafkaRecord]:
    """alarm-7's definition and BATCH events, once some of their output is written."""
    info = {"Name": "cpu", "Alarm": {"Type": "Alarm", "Value": "alarm-7"}}
    produce(
        settings,
        settings.topics.alarm_definitions,
        [definition_record(VC.instance_uuid, VC.source, "alarm-7", "cpu", info)],
    )
    batch = events(1, BATCH)
    produce(settings, settings.topics.events, batch)
    wait_for(
        lambda: written(settings, settings.topics.audit) >= output_before_going_on,
        60,
        "some output",
    )
    return batch


def audit_output(settings: Settings, inputs: list[KafkaRecord]) -> list[Any]:
    """The audit topic's events once every input's output is there (or after 120 s)."""
    expected = {expected_audit_id(record) for record in inputs}
    # every expected id, however many repeats come first (a count alone is reached while
    # the last distinct events are still on their way)
    records = consume(
        settings,
        settings.topics.audit,
        len(inputs),
        timeout=120,
        settle=2,
        until=lambda records: expected <= {audit_id(r) for r in records},
    )
    return decoded(records)


def assert_all_delivered_once_or_repeated(
    audit: list[Any], inputs: list[KafkaRecord]
) -> Counter[str]:
    """Every input reached the output (by derived id), nothing else did; times per id."""
    expected = {expected_audit_id(record) for record in inputs}
    seen = Counter(event.get_id() for event in audit)
    by_id = {expected_audit_id(record): schemas.decode(record) for record in inputs}
    lost = expected - set(seen)
    assert lost == set(), [
        (by_id[i].get_subject(), data_of(by_id[i])["Key"], by_id[i].get_id()) for i in lost
    ]
    assert set(seen) == expected  # nothing made up
    return seen
