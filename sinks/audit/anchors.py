"""Each partition's chain head, kept by Kafka with the audit sink's committed offset.

The hash chain shows a record modified, reordered, or deleted before the newest one;
deleting a partition's newest records, though, leaves a shorter chain that is still
valid. So after each batch the audit sink commits its offset with the head of that
partition's chain (`vcstream-audit-head:<offset>:<hash>`) as the commit's metadata.
Kafka keeps it apart from the storage, and `vcstream audit verify` checks that the
storage still holds that very record.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

from vcstream.kafka import client_config
from vcstream.settings.kafka import KafkaSettings

PREFIX = "vcstream-audit-head:"


@dataclass(frozen=True)
class Anchor:
    """The newest record stored for a partition when the sink last committed."""

    offset: int
    hash: str

    def text(self) -> str:
        return f"{PREFIX}{self.offset}:{self.hash}"

    @classmethod
    def parse(cls, text: str | None) -> Anchor | None:
        """The anchor in a commit's metadata; None for anything else (another writer's)."""
        if not text or not text.startswith(PREFIX):
            return None
        offset, _, digest = text.removeprefix(PREFIX).partition(":")
        if not offset.isdigit() or not digest:
            return None
        return cls(int(offset), digest)


def committed_anchors(
    kafka: KafkaSettings, group: str, topics: Iterable[str], timeout: float = 10
) -> dict[tuple[str, int], Anchor]:
    """The anchors a consumer group committed, by (topic, partition)."""
    consumer = Consumer(client_config(kafka, **{"group.id": group, "enable.auto.commit": False}))
    try:
        partitions = []
        for topic in topics:
            metadata = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
            if metadata is not None and metadata.error is None:
                partitions += [TopicPartition(topic, p) for p in sorted(metadata.partitions)]
        committed = consumer.committed(partitions, timeout=timeout) if partitions else []
    finally:
        consumer.close()
    found = ((tp, Anchor.parse(tp.metadata)) for tp in committed)
    return {(tp.topic, tp.partition): anchor for tp, anchor in found if anchor is not None}
