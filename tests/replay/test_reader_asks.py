"""The reader asks Kafka for no more records than its ranges can still give: consume()
waits for all it asked for (or its timeout), so a full batch asked for at a range's end
waited out the timeout at the end of every replay."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ClassVar

import pytest
from confluent_kafka import Consumer, Message

import replay.reader
from devenv import LocalKafka
from replay.plan import PartitionRange, Plan
from replay.reader import POLL_SECONDS, TAIL_POLL_SECONDS, RangeReader
from tests.replay.helpers import fill_topic, settings_for, write_in_transactions
from vcstream.kafka import TopicSpec, ensure_topics


@contextmanager
def range_reader(
    kafka: LocalKafka,
    plan: Plan,
    positions: dict[int, tuple[int, int]] | None = None,
    batch_size: int = 1000,
) -> Iterator[RangeReader]:
    """A reader of `plan` (resumed at `positions`: partition -> next offset, records
    taken), closed after the test, whatever it asserted."""
    reader = RangeReader(settings_for(kafka).kafka, plan, positions or {}, batch_size=batch_size)
    try:
        yield reader
    finally:
        reader.close()


@pytest.mark.parametrize(
    ("records", "partitions", "ranges", "positions", "most", "read"),
    [
        pytest.param(
            10,  # offsets 0..4 in each partition
            2,
            (PartitionRange(0, 0, 5, limit=3), PartitionRange(1, 1, 5)),
            {},
            3 + 4,
            [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (1, 3), (1, 4)],
            id="ranges-with-a-limit-and-a-start",
        ),
        pytest.param(
            6,
            1,
            (PartitionRange(0, 0, 6, limit=5),),
            {0: (3, 2)},  # resumed at offset 3 with two of its five records taken
            3,
            [(0, 3), (0, 4), (0, 5)],
            id="a-resumed-range",
        ),
    ],
)
def test_the_reader_asks_for_what_its_ranges_still_hold(
    kafka: LocalKafka,
    topic_name: Callable[[str], str],
    records: int,
    partitions: int,
    ranges: tuple[PartitionRange, ...],
    positions: dict[int, tuple[int, int]],
    most: int,
    read: list[tuple[int, int]],
) -> None:
    topic = topic_name("asks")
    fill_topic(kafka, topic, records, partitions=partitions)
    with range_reader(kafka, Plan(topic, ranges), positions) as reader:
        assert reader.most_to_come() == most
        got = [m for batch in reader.message_batches() for m in batch]
        assert sorted((m.partition(), m.offset()) for m in got) == read
        assert reader.finished


class RecordingConsumer(Consumer):
    """The reader's consumer, with the timeout of every consume() call noted."""

    timeouts: ClassVar[list[float]] = []

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Message]:
        RecordingConsumer.timeouts.append(timeout)
        return super().consume(num_messages, timeout)


def test_the_end_of_a_transactional_topic_is_not_waited_for(
    kafka: LocalKafka, topic_name: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every transaction of one record leaves a marker: 30 records take 60 offsets, so
    the reader asks for 60 and only 30 come (and the end of the log)."""
    topic = topic_name("asks-transactional")
    ensure_topics(settings_for(kafka).kafka, [TopicSpec(topic, partitions=1, retention=-1)])
    written = write_in_transactions(kafka, topic, transactions=30, each=1)
    plan = Plan(topic, (PartitionRange(0, 0, 2 * written),))
    monkeypatch.setattr(replay.reader, "Consumer", RecordingConsumer)
    RecordingConsumer.timeouts = []
    with range_reader(kafka, plan) as reader:
        assert reader.most_to_come() == 2 * written  # more than will come
        assert sum(len(batch) for batch in reader.message_batches()) == written
        assert RecordingConsumer.timeouts
        assert set(RecordingConsumer.timeouts) == {TAIL_POLL_SECONDS}


def test_far_from_the_end_the_reader_waits_for_a_full_batch(
    kafka: LocalKafka, topic_name: Callable[[str], str]
) -> None:
    topic = topic_name("asks-far")
    fill_topic(kafka, topic, 30, partitions=1)
    with range_reader(kafka, Plan(topic, (PartitionRange(0, 0, 30),)), batch_size=10) as reader:
        assert reader.consume_timeout(reader.most_to_come()) == POLL_SECONDS  # 30 > 2 x 10
        assert reader.consume_timeout(20) == TAIL_POLL_SECONDS
