"""Read exactly a plan's offsets with assign(): never a group member, never a commit
unless asked, read_committed so aborted transactions are never replayed."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from replay.plan import PartitionRange, Plan
from schemas import KafkaRecord
from vcstream.kafka import client_config
from vcstream.settings.kafka import KafkaSettings

log = logging.getLogger(__name__)

BATCH_SIZE = 1000
POLL_SECONDS = 0.5
# how long consume() may wait near the ranges' end, for records that may never come
TAIL_POLL_SECONDS = 0.02


# Fetching, sized so that one replay process stays under 150 MB RSS whatever the range
# (librdkafka's defaults, a 64 MB queue and 50 MB fetches, made a bare consume loop
# alone peak at 210 MB) without ever stalling. A user's `clientProperties` win.
FETCH_SETTINGS: dict[str, str] = {
    # the prefetch queue (one for all assigned partitions). librdkafka's footprint is a
    # multiple of it (buffers, decompression): measured on 6 partitions of lz4 records,
    # 16 MB peaked at 223 MB RSS, 4 MB at 118 MB and still consumed ~195k records/s
    "queued.max.messages.kbytes": "4096",
    # when that queue is full the fetcher backs off this long before it looks again;
    # the default 1000 ms starved the loop once it had drained a small queue (a replay
    # stalled at ~12k records/s; 10 ms reached ~145k records/s on the same topic)
    "fetch.queue.backoff.ms": "10",
    # one fetch response at most 2 MB (default 50 MB): the response and the records
    # decompressed from it are held at once, on top of the queue
    "fetch.max.bytes": str(2 * 1024 * 1024),
}


def _fetch_settings(kafka: KafkaSettings) -> dict[str, str]:
    return {
        name: str(kafka.client_properties.get(name, value))
        for name, value in FETCH_SETTINGS.items()
    }


class ReplayReadError(RuntimeError):
    """The topic changed under the replay (e.g. retention deleted the next offset)."""


@dataclass
class _Cursor:
    range: PartitionRange
    next_offset: int
    taken: int  # records already replayed from this partition (toward range.limit)
    ended: bool = False  # the end of the log was reached (only markers were left)

    @property
    def done(self) -> bool:
        limit = self.range.limit
        return (
            self.ended
            or self.next_offset >= self.range.stop
            or (limit is not None and self.taken >= limit)
        )


class RangeReader:
    """Yields batches of records inside the plan, in offset order per partition.

    `group` is only for `--group`: the consumer then commits replayed offsets under that
    group id (without joining it). Otherwise the group id is a throwaway that never
    reaches the broker's offsets topic, because nothing is ever committed.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        plan: Plan,
        positions: dict[int, tuple[int, int]],
        group: str | None = None,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self.plan = plan
        self.batch_size = batch_size
        self.group = group
        self._cursors = {
            r.partition: _Cursor(r, *positions.get(r.partition, (r.start, 0))) for r in plan.ranges
        }
        self._consumer = Consumer(
            client_config(
                kafka,
                **{
                    "group.id": group or f"vcstream-replay-{uuid.uuid4()}",
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "isolation.level": "read_committed",
                    "enable.partition.eof": True,
                    # an offset deleted mid-replay is an error to report, never a silent jump
                    "auto.offset.reset": "error",
                    "client.id": "vcstream-replay",
                    **_fetch_settings(kafka),
                },
            )
        )
        # offset bound per partition still being read (none once done): `_in_range`
        self._stops = {p: c.range.stop for p, c in self._cursors.items() if not c.done}
        pending = [
            TopicPartition(plan.topic, p, cursor.next_offset)
            for p, cursor in self._cursors.items()
            if not cursor.done
        ]
        if pending:
            self._consumer.assign(pending)

    @property
    def finished(self) -> bool:
        return all(cursor.done for cursor in self._cursors.values())

    def batches(self) -> Iterator[list[KafkaRecord]]:
        """Batches until every partition reached its stop; the caller may stop early."""
        for messages in self.message_batches():
            yield [KafkaRecord.from_confluent(message) for message in messages]

    def message_batches(self) -> Iterator[list[Message]]:
        """The same batches as confluent-kafka's messages, for a loop that reads their
        bytes without building a record for each (offsets in range, errors handled)."""
        while not self.finished:
            left = self.most_to_come()
            wanted = min(self.batch_size, left)
            timeout = self.consume_timeout(left)
            batch = self._in_range(self._consumer.consume(wanted, timeout=timeout))
            if batch:
                yield batch

    def most_to_come(self) -> int:
        """The most records the unfinished partitions can still give (offsets left, or
        what --count leaves): consume() returns once it has all it asked for or its
        timeout passes, so asked for a full batch at a range's end it waited out the
        timeout (0.5 s of a 0.8 s read of 100,000 records). Transaction markers take
        offsets without being records, so this can still be more than will come:
        `consume_timeout`."""
        left = 0
        for partition in self._stops:
            cursor = self._cursors[partition]
            span = cursor.range.stop - cursor.next_offset
            limit = cursor.range.limit
            left += span if limit is None else min(span, limit - cursor.taken)
        return max(1, left)

    def consume_timeout(self, left: int) -> float:
        """How long consume() may wait for a batch when `left` offsets remain.

        A transaction takes one offset for its marker and at least one for a record, so
        at least half of the offsets left are records: while more than two batches' worth
        are left, a full batch is there to fill. Nearer the end (on a transactional
        topic, every replay's end) what is asked may never come, and consume() would
        wait out its whole timeout: it gets a short one, and the loop asks again. (Records
        of aborted transactions are offsets too: after many of them the wait can still
        be the whole timeout, once.)"""
        return POLL_SECONDS if left > 2 * self.batch_size else TAIL_POLL_SECONDS

    def _in_range(self, messages: list[Message]) -> list[Message]:
        # one pass with the cursors' bounds in locals: this runs for every record
        kept: list[Message] = []
        keep = kept.append
        stops = self._stops
        for message in messages:
            if message.error() is not None:
                self._error(message)
                continue
            # both set on every consumed message (None only on one made by hand)
            partition: int = message.partition()  # type: ignore[assignment]
            offset: int = message.offset()  # type: ignore[assignment]
            stop = stops.get(partition, -1)
            if offset < stop:
                keep(message)
                cursor = self._cursors[partition]
                cursor.next_offset = offset + 1
                cursor.taken += 1
                if offset + 1 >= stop or cursor.taken == cursor.range.limit:
                    self._finish(partition)
            elif stop >= 0:
                self._finish(partition)
        return kept

    def _error(self, message: Message) -> None:
        error = message.error()
        partition = message.partition()
        assert error is not None and partition is not None
        if error.code() == KafkaError._PARTITION_EOF:
            # the end of the log: only transaction markers lay between us and the stop
            self._finish(partition)
            return
        if error.code() == KafkaError._AUTO_OFFSET_RESET:
            raise ReplayReadError(
                f"partition {partition}: offset {self._cursors[partition].next_offset} "
                "was deleted (retention) while replaying: the range is no longer complete"
            )
        if error.fatal() or not error.retriable():
            raise ReplayReadError(f"reading {self.plan.topic}[{partition}]: {error.str()}")
        log.warning("reading %s[%d]: %s (retrying)", self.plan.topic, partition, error.str())

    def _finish(self, partition: int) -> None:
        self._cursors[partition].ended = True
        self._stops.pop(partition, None)
        # already unassigned when a stop record and an EOF arrive for the same partition
        with contextlib.suppress(KafkaException):
            self._consumer.incremental_unassign([TopicPartition(self.plan.topic, partition)])

    def commit(self, next_offsets: dict[int, int]) -> None:
        """Store progress under `--group` (a standalone commit: the group is not joined)."""
        if self.group is None or not next_offsets:
            return
        self._consumer.commit(
            offsets=[TopicPartition(self.plan.topic, p, o) for p, o in next_offsets.items()],
            asynchronous=False,
        )

    def close(self) -> None:
        self._consumer.close()
