"""The reader asks Kafka for no more records than its ranges can still give: consume()
waits for all it asked for (or its timeout), so a full batch asked for at a range's end
waited out the timeout at the end of every replay."""

from __future__ import annotations

from collections.abc import Callable

from devenv import LocalKafka
from replay.plan import PartitionRange, Plan
from replay.reader import RangeReader
from tests.replay.helpers import fill_topic, settings_for


def test_the_reader_asks_for_what_its_ranges_still_hold(
    kafka: LocalKafka, topic_name: Callable[[str], str]
) -> None:
    topic = topic_name("asks")
    fill_topic(kafka, topic, 10, partitions=2)  # offsets 0..4 in each partition
    plan = Plan(topic, (PartitionRange(0, 0, 5, limit=3), PartitionRange(1, 1, 5)))
    reader = RangeReader(settings_for(kafka).kafka, plan, {}, batch_size=1000)
    try:
        assert reader.most_to_come() == 3 + 4
        read = [m for batch in reader.message_batches() for m in batch]
        assert sorted((m.partition(), m.offset()) for m in read) == [
            (0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (1, 3), (1, 4),
        ]  # fmt: skip
        assert reader.finished
    finally:
        reader.close()


def test_a_resumed_range_asks_for_what_is_left_of_it(
    kafka: LocalKafka, topic_name: Callable[[str], str]
) -> None:
    topic = topic_name("asks-resumed")
    fill_topic(kafka, topic, 6, partitions=1)
    plan = Plan(topic, (PartitionRange(0, 0, 6, limit=5),))
    # resumed at offset 3 with two of its five records taken
    reader = RangeReader(settings_for(kafka).kafka, plan, {0: (3, 2)}, batch_size=1000)
    try:
        assert reader.most_to_come() == 3
        assert [m.offset() for batch in reader.message_batches() for m in batch] == [3, 4, 5]
    finally:
        reader.close()
