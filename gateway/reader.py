"""Reading the served topic for HTTP clients: read_committed, assigned, never a group.

Each watch has its own consumer with assign(): it joins no consumer group and commits
nothing (the group id is a throwaway librdkafka requires and never sends), so watches
never disturb the pipeline's consumers. The fetch queue is small, so a watch holds at
most about `queued.max.messages.kbytes` of records however slow its client: the consumer
stops fetching when its queue is full, and the queue drains only as fast as the
watch writes to its client. Fetches are small too: a fetch's cap counts compressed bytes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from schemas.record import KafkaRecord
from vcstream.kafka import client_config
from vcstream.settings.kafka import KafkaSettings

POLL_SECONDS = 0.5
# What one watch's consumer may hold, whatever its client's pace. librdkafka's defaults
# (queued.min.messages 100,000 a partition, 64 MB queued, 50 MB fetches) are far too
# much for up to maxWatches consumers in one process, and a cap on fetched bytes is a
# cap on *compressed* bytes: 1 MB of a well-compressed topic held about 15 MB a consumer
# once decompressed (bench.gateway, 50 readers: 1.4 GB). So: few records queued, small
# fetches; a record larger than a fetch still comes (Kafka returns at least one batch,
# KIP-74). librdkafka wants fetch.max.bytes >= message.max.bytes, which for a consumer
# bounds only the requests it sends. The user's clientProperties win.
FETCH_SETTINGS = {
    "queued.min.messages": "500",
    "queued.max.messages.kbytes": "128",
    "fetch.max.bytes": str(128 * 1024),
    "max.partition.fetch.bytes": str(128 * 1024),
    "message.max.bytes": str(128 * 1024),
    "fetch.queue.backoff.ms": "10",
}


class ReadError(Exception):
    """Kafka could not answer."""


class NotThere(ReadError):
    """The topic or the partition asked for does not exist."""


class TopicReader:
    """Blocking Kafka reads; the server runs them on `executor`, one thread per call."""

    def __init__(self, kafka: KafkaSettings, topic: str, executor: ThreadPoolExecutor) -> None:
        self.kafka = kafka
        self.topic = topic
        self.executor = executor

    def consumer(self) -> Consumer:
        fetch = {k: self.kafka.client_properties.get(k, v) for k, v in FETCH_SETTINGS.items()}
        return Consumer(
            client_config(
                self.kafka,
                **{
                    "group.id": f"vcstream-gateway-{uuid.uuid4()}",
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "isolation.level": "read_committed",
                    "enable.partition.eof": True,  # a read to the end stops there
                    "auto.offset.reset": "earliest",
                    "client.id": "vcstream-gateway-watch",
                    **fetch,
                },
            )
        )

    @contextmanager
    def _consumer(self) -> Iterator[Consumer]:
        consumer = self.consumer()
        try:
            yield consumer
        finally:
            consumer.close()

    def partitions(self, consumer: Consumer, timeout: float = 10) -> list[int]:
        try:
            metadata = consumer.list_topics(self.topic, timeout).topics.get(self.topic)
        except KafkaException as exc:
            raise ReadError(f"Kafka did not answer: {exc}") from None
        if metadata is None or metadata.error is not None or not metadata.partitions:
            raise NotThere(f"topic {self.topic} does not exist")
        return sorted(metadata.partitions)

    def range(self) -> dict[int, tuple[int, int]]:
        """Per partition: (earliest offset, end offset = the next offset to be written)."""
        with self._consumer() as consumer:
            result = {}
            for partition in self.partitions(consumer):
                try:
                    low, high = consumer.get_watermark_offsets(
                        TopicPartition(self.topic, partition), timeout=10
                    )
                except KafkaException as exc:
                    raise ReadError(f"Kafka did not answer: {exc}") from None
                result[partition] = (low, high)
            return result

    def one(self, partition: int, offset: int) -> KafkaRecord | None:
        """The committed record at that offset, or None (none there, or not committed)."""
        with self._consumer() as consumer:
            if partition not in self.partitions(consumer):
                return None
            low, high = consumer.get_watermark_offsets(
                TopicPartition(self.topic, partition), timeout=10
            )
            if not low <= offset < high:
                return None
            consumer.assign([TopicPartition(self.topic, partition, offset)])
            for _ in range(20):  # up to ~10 s for a busy broker
                message = consumer.poll(POLL_SECONDS)
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        return None  # only markers or aborted records were left
                    _raise_unless_retriable(error)
                    continue
                # an aborted record or a transaction marker is skipped by read_committed
                return KafkaRecord.from_confluent(message) if message.offset() == offset else None
            return None

    def start_positions(
        self,
        consumer: Consumer,
        partition: int | None,
        offset: int | None,
        time_ms: int | None,
        resume: dict[int, int] | None,
    ) -> list[TopicPartition]:
        """Where a watch starts on each partition, always an explicit offset: an offset,
        a time or now (the end), except where the cursor of a resumed watch
        (`Last-Event-ID`) says where it got to.

        The positions go into every event id, so a resumed watch starts where its
        first request did on partitions it has not yet seen an event of. A cursor names
        every partition the watch started on: a partition it lacks was created since,
        so a resumed `now` reads it from its earliest offset (an offset or a time means
        the same on every request and is applied again)."""
        partitions = self.partitions(consumer)
        if partition is not None:
            if partition not in partitions:
                raise NotThere(f"topic {self.topic} has no partition {partition}")
            partitions = [partition]
        if offset is not None:
            starts = {p: offset for p in partitions}
        elif time_ms is not None:
            # the ends before the search: a partition with no record that late starts
            # there, so nothing written between the two questions is skipped
            ends = self._ends(consumer, partitions)
            asked = [TopicPartition(self.topic, p, time_ms) for p in partitions]
            try:
                found = consumer.offsets_for_times(asked, timeout=10)
            except KafkaException as exc:
                raise ReadError(f"Kafka did not answer: {exc}") from None
            # no record at or after the time: -1 (OFFSET_END), which librdkafka would
            # resolve only when the fetcher gets to it
            starts = {
                tp.partition: tp.offset if tp.offset >= 0 else ends[tp.partition] for tp in found
            }
        elif resume:
            starts = dict.fromkeys(partitions, 0)
        else:
            # now: the end when asked (the last stable offset: the consumer reads
            # committed), not when the fetcher gets to it, which can be after events
            # that arrived since the request
            starts = self._ends(consumer, partitions)
        for p, next_offset in (resume or {}).items():
            if p in starts:
                starts[p] = next_offset
        return [TopicPartition(self.topic, p, o) for p, o in sorted(starts.items())]

    def _ends(self, consumer: Consumer, partitions: list[int]) -> dict[int, int]:
        """Each partition's end as read_committed sees it (the last stable offset), as
        the broker has it now."""
        ends = {}
        for p in partitions:
            try:
                _, ends[p] = consumer.get_watermark_offsets(
                    TopicPartition(self.topic, p), timeout=10, cached=False
                )
            except KafkaException as exc:
                raise ReadError(f"Kafka did not answer: {exc}") from None
        return ends

    def ends(
        self, consumer: Consumer, partitions: list[TopicPartition], until_ms: int | None = None
    ) -> dict[int, int]:
        """Where a read to the end stops: each partition's end (the last stable offset,
        as read_committed sees it) when asked, or its first record at or after
        `until_ms` if sooner; partitions that start there are left out."""
        stops: dict[int, int] = {}
        if until_ms is not None:
            asked = [TopicPartition(self.topic, tp.partition, until_ms) for tp in partitions]
            try:
                for found in consumer.offsets_for_times(asked, timeout=10):
                    if found.offset >= 0:  # -1: no record that late, the end decides
                        stops[found.partition] = found.offset
            except KafkaException as exc:
                raise ReadError(f"Kafka did not answer: {exc}") from None
        highs = self._ends(consumer, [tp.partition for tp in partitions])
        ends = {}
        for tp in partitions:
            end = min(highs[tp.partition], stops.get(tp.partition, highs[tp.partition]))
            if 0 <= tp.offset < end:
                ends[tp.partition] = end
        return ends

    def reached(self, consumer: Consumer, ends: dict[int, int]) -> set[int]:
        """Partitions whose position is at their end: the position moves past
        transaction markers, where no record (and, under load, no EOF) would tell."""
        asked = [TopicPartition(self.topic, p) for p in ends]
        return {tp.partition for tp in consumer.position(asked) if tp.offset >= ends[tp.partition]}

    def batch(self, consumer: Consumer, size: int) -> tuple[list[KafkaRecord], set[int]]:
        """Up to `size` committed records, in offset order per partition, and the
        partitions whose end was reached."""
        records, ended = [], set()
        for message in consumer.consume(size, timeout=POLL_SECONDS):
            error = message.error()
            if error is not None:
                partition = message.partition()
                if error.code() == KafkaError._PARTITION_EOF and partition is not None:
                    ended.add(partition)
                    continue
                _raise_unless_retriable(error)
                continue
            records.append(KafkaRecord.from_confluent(message))
        return records, ended


def _raise_unless_retriable(error: Any) -> None:
    if error.code() == KafkaError._PARTITION_EOF:
        return
    if error.fatal() or not error.retriable():
        raise ReadError(error.str())
