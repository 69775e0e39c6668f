"""The alarm definitions: read by every worker from the producer's topic, complete before
the first alarm is enriched, after a start and after a rebalance, and kept nowhere else."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

import schemas
from schemas.record import KafkaRecord
from streams.api import data_of
from streams.topics import prepare_topics
from tests.streams.helpers import (
    StreamsWorker,
    consume,
    definition_record,
    produce,
    produce_in_transactions,
    streams_config,
)
from tests.streams.test_worker import VC, alarm
from vcstream.kafka import client_config

pytestmark = pytest.mark.integration

DEFINITIONS = 3000  # several fetches' worth: a partly read topic is a real state
RENAMED = 20  # alarms whose definition changed: the topic holds both versions


def definition(number: int, name: str) -> KafkaRecord:
    alarm_id = f"alarm-{number}"
    info = {"Name": name, "Alarm": {"Type": "Alarm", "Value": alarm_id}}
    return definition_record(VC.instance_uuid, VC.source, alarm_id, name, info)


def alarm_names(records: list[KafkaRecord]) -> list[str]:
    """The definition name each alarm was enriched with ("" if it was not)."""
    return [data_of(schemas.decode(r)).get("AlarmInfo", {}).get("Name", "") for r in records]


def test_every_alarm_is_enriched_with_the_newest_definition_after_a_start_and_a_rebalance(
    kafka, topic_name, tmp_path: Path
):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    # no grace for a missing definition: an alarm read before the definitions are
    # loaded would go out unenriched at once
    options = {"enrichment": {"waitForDefinition": "0s"}}
    first = StreamsWorker(
        streams_config(tmp_path / "a", kafka.bootstrap_servers, topic_name, **options)
    )
    second = StreamsWorker(
        streams_config(tmp_path / "b", kafka.bootstrap_servers, topic_name, **options)
    )
    settings = first.settings
    last = range(DEFINITIONS - RENAMED, DEFINITIONS)
    prepare_topics(settings, [])
    old = [definition(n, f"old {n}") for n in range(DEFINITIONS)]
    produce_in_transactions(settings, settings.topics.alarm_definitions, old, 50)
    new = [definition(n, f"new {n}") for n in last]
    produce_in_transactions(settings, settings.topics.alarm_definitions, new, 5)
    produce(settings, settings.topics.events, [alarm(f"alarm-{n}", "red") for n in last])
    try:
        first.start()
        after_start = consume(settings, settings.topics.alarms, RENAMED, timeout=60)
        second.start()  # a rebalance; alarms for it to enrich
        produce(settings, settings.topics.events, [alarm(f"alarm-{n}", "red") for n in last])
        after_rebalance = consume(settings, settings.topics.alarms, 2 * RENAMED, timeout=60)
    finally:
        second.stop()
        first.stop()

    assert sorted(alarm_names(after_start)) == sorted(f"new {n}" for n in last)
    assert sorted(set(alarm_names(after_rebalance))) == sorted(f"new {n}" for n in last)
    topics = AdminClient(client_config(settings.kafka)).list_topics(timeout=10).topics
    # no copy: no topic of the worker's own (named after its app id) holds definitions
    own = [name for name in topics if name.startswith(settings.streams.app_id)]
    assert own and [name for name in own if "definitions" in name] == []
