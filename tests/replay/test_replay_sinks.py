"""Replaying into sink connectors, with their retries and dead letters."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from devenv import LocalKafka
from replay.session import ReplayRequest, run_replay
from replay.spec import ReplaySpec
from tests.replay.helpers import fill_topic, settings_for
from tests.sinks.receivers import OK, Fault, Receiver, parse_cloudevent
from vcstream.kafka import TopicSpec, ensure_topics

pytestmark = pytest.mark.integration


@pytest.fixture
def broker_receiver() -> Iterator[Receiver]:
    receiver = Receiver(parse_cloudevent).start()
    yield receiver
    receiver.stop()


def read_topic(kafka: LocalKafka, topic: str) -> list[Any]:
    consumer = Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": "dl-reader"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    messages = [m for m in consumer.consume(100, timeout=5) if not m.error()]
    consumer.close()
    return messages


def test_replay_into_knative_counts_a_rejected_event_as_dead_lettered(
    kafka: LocalKafka,
    topic_name: Callable[[str], str],
    tmp_path: Path,
    broker_receiver: Receiver,
) -> None:
    topic, dead = topic_name("knative"), topic_name("dead")
    fill_topic(kafka, topic, 30, partitions=2)
    ensure_topics(settings_for(kafka).kafka, [TopicSpec(dead)])
    # the broker refuses key 7 for good (400 is not worth a retry); the rest is accepted
    broker_receiver.plan = lambda _n, event: Fault.http(400) if event.get_data()["Key"] == 7 else OK
    settings = settings_for(
        kafka,
        sinks={
            "knative": {
                "url": broker_receiver.url,
                "delivery": {"retry": 1, "backoffDelay": "PT0.01S", "deadLetterTopic": dead},
            }
        },
    )
    outcome = run_replay(
        settings,
        ReplayRequest(
            ReplaySpec(topic, from_beginning=True),
            "knative",
            state_path=tmp_path / "state.json",
            progress_stream=io.StringIO(),
        ),
    )

    totals = outcome.report["totals"]
    assert (totals["read"], totals["written"], totals["deadLettered"]) == (30, 29, 1)
    assert len(broker_receiver.accepted) == 29
    assert sorted(e.get_data()["Key"] for e in broker_receiver.accepted) == [
        k for k in range(30) if k != 7
    ]
    (letter,) = read_topic(kafka, dead)
    headers = dict(letter.headers())
    assert headers["vcstream.error.stage"] == b"sink:knative"
    assert headers["vcstream.error.offset"] == b"3"  # key 7 is partition 1, offset 3
