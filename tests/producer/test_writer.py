"""The transactional writer tells a producer that took over from a transaction that timed out.

librdkafka reports both as "fenced"; only the first must stop a vCenter's worker. The
second happens when a broker restart outlasts transaction.timeout.ms, and the worker
must start over from its checkpoint instead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest

from devenv import LocalKafka
from producer.writer import (
    Outgoing,
    ProducerFenced,
    TransactionalWriter,
    TransactionTimedOut,
)
from schemas.record import KafkaRecord
from tests.producer.conftest import read_topic
from vcstream.kafka import TopicSpec, ensure_topics
from vcstream.settings.kafka import KafkaSettings

pytestmark = pytest.mark.integration

TIMEOUT = timedelta(seconds=2)


def writer(kafka: LocalKafka, transactional_id: str) -> TransactionalWriter:
    settings = KafkaSettings(bootstrapServers=kafka.bootstrap_servers)
    started = TransactionalWriter(settings, transactional_id, TIMEOUT, "sim", threading.Event())
    started.start()
    return started


def records(topic: str, *values: str) -> list[Outgoing]:
    return [(topic, KafkaRecord(value=value.encode())) for value in values]


class Stalling(list[Outgoing]):
    """A batch whose first pass stalls after its first record, as if the broker were away."""

    def __init__(self, batch: list[Outgoing], stall: float) -> None:
        super().__init__(batch)
        self.stall = stall

    def __iter__(self) -> Iterator[Outgoing]:
        stall, self.stall = self.stall, 0.0
        for index, item in enumerate(super().__iter__()):
            if index == 1:
                threading.Event().wait(stall)
            yield item


def values(kafka: LocalKafka, topic: str) -> list[str]:
    return [(record.value or b"").decode() for record in read_topic(kafka.bootstrap_servers, topic)]


@pytest.fixture
def topic(kafka: LocalKafka, topic_name: Callable[[str], str]) -> str:
    name = topic_name("writer")
    ensure_topics(KafkaSettings(bootstrapServers=kafka.bootstrap_servers), [TopicSpec(name)])
    return name


def test_a_second_producer_with_the_same_id_fences_the_first(
    kafka: LocalKafka, topic: str, topic_name: Callable[[str], str]
) -> None:
    transactional_id = topic_name("txn")
    first = writer(kafka, transactional_id)
    first.commit(records(topic, "first-1"))
    second = writer(kafka, transactional_id)
    with pytest.raises(ProducerFenced):
        first.commit(records(topic, "first-2"))
    second.commit(records(topic, "second-1"))
    first.close()
    second.close()
    assert values(kafka, topic) == ["first-1", "second-1"]


def test_a_transaction_aborted_for_its_age_is_not_taken_for_a_takeover(
    kafka: LocalKafka, topic_name: Callable[[str], str]
) -> None:
    # the session broker looks for expired transactions every 300 ms (QUICK_CHORES)
    broker = kafka
    topic = topic_name("writer")
    ensure_topics(KafkaSettings(bootstrapServers=broker.bootstrap_servers), [TopicSpec(topic)])
    old = writer(broker, topic_name("txn"))
    stall = TIMEOUT.total_seconds() + 2
    with pytest.raises(TransactionTimedOut, match=r"outlived transaction\.timeout\.ms"):
        old.commit(Stalling(records(topic, "stalled-1", "stalled-2"), stall))
    # what the worker does next: a new producer, the same id, the batch again
    old.start()
    old.commit(records(topic, "again-1", "again-2"))
    old.close()
    assert values(broker, topic) == ["again-1", "again-2"]
