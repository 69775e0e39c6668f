"""Faust's aiokafka transport, reading committed data only, and never skipping a record unread.

**read_committed.** The producer writes events inside Kafka transactions; a consumer
reading uncommitted data would process events of aborted transactions, which the
producer then writes again. faust-streaming reads committed data only in its
`exactly_once` mode, which vcstream does not use (open bugs), so this transport sets the
isolation level itself.

**No record skipped.** faust-streaming 0.15 loses records around table recovery (at
start, after a rebalance), which a kill -9 test showed about one run in four:
- `flow_control.resume()`, which recovery calls several times, clears the streams'
  queues, and the records in them never reach an agent;
- its getmany leaves out records of partitions paused meanwhile, and its streams skip
  (and ack) records taken while flow control is suspended;
- it counts on seeking back to the committed offsets afterwards, but aiokafka seeks only
  partitions with a committed offset above 0 (not a new group, not a topic's first
  records), and the batch being fetched when the seek lands goes on being delivered,
  after which Faust's read offset discards the records fetched again.
Faust's commit, whose gap check is one offset short, then moves past them.

So this consumer keeps, per partition, the offsets it handed to the streams that no
agent has taken yet. An agent asks `arrived(message)` before processing a record: only
the next record handed over passes. A record that went missing on the way, one dropped
before it was handed over, or what a batch still carries after a partition's position
was reset, is held: the consumer seeks back to the first held offset before handing over
anything later from that partition. Acks count only for records an agent processed
(`ack_processed`); Faust's acks of records its streams skipped are ignored.

Brokers are addressed as `vcstream-kafka://host:port`.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from faust.transport import drivers
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message

SCHEME = "vcstream-kafka"

log = logging.getLogger(__name__)


class ReadCommittedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka takes the level in its constructor only and hands it to its fetcher
        # at start(); Faust builds the consumer without exposing the argument
        consumer._isolation_level = "read_committed"
        return consumer


class Consumer(faust_aiokafka.Consumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._all_reset = 0  # bumped when every partition is sought (perform_seek)
        self._resets: Counter[TP] = Counter()  # bumped when one partition is sought
        self._held: dict[TP, int] = {}  # where to read again from, per partition
        self._in_transit: dict[TP, deque[int]] = {}  # handed to streams, not yet taken
        self._position: dict[TP, int] = {}  # after the last record processed in order
        self._handed: dict[TP, int] = {}  # the last record handed over, per partition
        self._past_markers: set[TP] = set()  # handed records since the position was read
        self._acking = False

    def _new_consumer_thread(self) -> ReadCommittedConsumerThread:
        return ReadCommittedConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        if self._held and self.app.flow_control.is_active():
            for tp, offset in list(self._held.items()):
                await self._read_again(tp, offset)
        await self._move_past_markers()
        all_reset, resets = self._all_reset, self._resets.copy()
        async for tp, message in super().getmany(timeout):
            if self._changelog(tp):
                yield tp, message  # table recovery reads these while streams wait
                continue
            if self._all_reset != all_reset or self._resets[tp] != resets[tp]:
                self._hold(tp, message.offset)  # fetched from before the seek
                continue
            if not self.app.flow_control.is_active():
                self._hold(tp, message.offset)  # a stream would skip it now
                continue
            held = self._held.get(tp)
            if held is not None and message.offset > held:
                await self._read_again(tp, held)  # the rest of this batch is stale
                continue
            if held is not None and message.offset == held:
                del self._held[tp]
            self._in_transit.setdefault(tp, deque()).append(message.offset)
            self._handed[tp] = message.offset
            self._past_markers.add(tp)
            yield tp, message

    async def _move_past_markers(self) -> None:
        """Let the commit pass the transaction markers after a partition's last record.

        A marker is not a record: the position after the last record processed stops
        short of it, and a partition whose last transaction is fully processed would
        show a lag of one until more records came. Between two fetches aiokafka's
        position is past everything it returned, markers included; once every record
        handed over is processed, the records before that position are all done.
        """
        for tp in list(self._past_markers):
            processed = self._position.get(tp)
            if processed is None or processed != self._handed.get(tp, -1) + 1:
                continue  # records still on their way: later ones move it
            self._past_markers.discard(tp)
            if tp not in self.assignment() or tp in self._held:
                continue
            position = await self.position(tp)
            # a seek meanwhile only goes back (to a committed or held offset)
            if position is not None and position > self._position.get(tp, position):
                self._position[tp] = position

    def arrived(self, message: Message) -> bool:
        """Whether an agent may process this record now; if not, it is read again later."""
        tp = message.tp
        if self._changelog(tp):
            return True
        transit = self._in_transit.get(tp)
        if transit and transit[0] == message.offset:
            transit.popleft()
            return True
        if transit and transit[0] < message.offset:
            self._hold(tp, transit[0])  # handed over before this one, never taken
        # else handed over before the partition's position was reset: read again
        return False

    def ack_processed(self, message: Message) -> bool:
        """Ack a record an agent has processed: the only acks that move commits.

        Called in offset order per partition (streams.acks): every record read before
        this one has been processed, so the partition may be committed up to it.
        """
        self._position[message.tp] = message.offset + 1
        self._acking = True
        try:
            return super().ack(message)
        finally:
            self._acking = False

    def ack(self, message: Message) -> bool:
        if self._acking or self._changelog(message.tp):
            return super().ack(message)
        return False  # a record a stream skipped: Faust acks it and would commit past it

    def _new_offset(self, tp: TP) -> int | None:
        """Where to commit a partition: after the last record processed in offset order.

        Replaces faust-streaming 0.15's arithmetic, which keeps every acked offset in a
        list and commits the first unbroken run of it, filling gaps in offsets (the
        commit markers of transactional input) from intervals its fetch loop records.
        Those intervals include the offset of the record that revealed the gap, which
        is then acked as well: the duplicate breaks the run, so each commit stopped at
        the next transaction marker. Under the producer's steady input that was one
        transaction per commit interval, while the lists of acked offsets and gaps grew
        without bound. Acks arrive in offset order here, so one position per partition
        is the whole state; what Faust recorded is dropped.
        """
        self._acked[tp].clear()
        self._acked_index[tp].clear()
        self._gap.pop(tp, None)
        return self._position.get(tp)

    async def _read_again(self, tp: TP, offset: int) -> None:
        del self._held[tp]
        if tp not in self.assignment():
            return  # revoked meanwhile: its next owner reads from the committed offset
        log.info("reading %s[%s] again from offset %s", tp.topic, tp.partition, offset)
        await self.seek(tp, offset)

    async def _wait_next_records(self, timeout: float) -> Any:
        records, active = await super()._wait_next_records(timeout)
        # Faust's getmany silently leaves out records of partitions paused meanwhile
        for tp, batch in (records or {}).items():
            paused = active is not None and tp not in active
            if paused and batch and not self._buffered_or_changelog(tp):
                self._hold(tp, batch[0].offset)
        return records, active

    def _changelog(self, tp: TP) -> bool:
        return tp.topic in self.app.tables.changelog_topics

    def _buffered_or_changelog(self, tp: TP) -> bool:
        return tp in self._buffered_partitions or self._changelog(tp)

    def _hold(self, tp: TP, offset: int) -> None:
        # Read again from the first record handed over but not taken yet, too: once a
        # partition is read again, what is on its way from before is refused by arrived().
        transit = self._in_transit.pop(tp, None)
        if transit:
            offset = min(offset, transit[0])
        held = self._held.get(tp)
        if held is None or offset < held:
            self._held[tp] = offset
        self._resets[tp] += 1  # what the current batch has after it is stale

    def hold_dropped(self, queued: Iterable[Any]) -> None:
        """Faust is about to drop these queued events: read them again later."""
        for event in queued:
            message = getattr(event, "message", None)
            if message is not None and not self._changelog(message.tp):
                self._hold(message.tp, message.offset)

    async def perform_seek(self) -> None:
        self._all_reset += 1
        await super().perform_seek()

    async def seek(self, partition: TP, offset: int) -> None:
        self._resets[partition] += 1
        self._in_transit.pop(partition, None)
        self._handed.pop(partition, None)
        await super().seek(partition, offset)

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        # aiokafka has reset every assigned partition to its committed offset: whatever
        # was held or on its way is read again from there
        self._held.clear()
        self._in_transit.clear()
        self._position.clear()  # a new generation acks afresh, from the committed offsets
        self._handed.clear()
        self._past_markers.clear()
        await super().on_partitions_assigned(assigned, generation_id)

    def held_back(self) -> Mapping[TP, int]:
        """Partitions to read again, and from which offset (for tests)."""
        return dict(self._held)


def hold_what_flow_control_clears(app: Any) -> None:
    """Make `app.flow_control` hand the events it is about to clear to the consumer."""
    flow_control = app.flow_control
    clear = flow_control.clear

    def clear_and_hold() -> None:
        consumer = app.consumer
        if isinstance(consumer, Consumer):
            for queue in list(flow_control._queues):
                consumer.hold_dropped(list(queue._queue))
        clear()

    # resume() calls self.clear(): an attribute of the instance is found first
    flow_control.clear = clear_and_hold


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer


drivers.TRANSPORTS.aliases.setdefault(SCHEME, f"{__name__}:Transport")


def broker_urls(faust_broker: str) -> str:
    """`kafka://a;kafka://b` (vcstream.kafka.faust_broker_options) on this transport."""
    return ";".join(
        SCHEME + "://" + url.split("://", 1)[-1] for url in faust_broker.split(";") if url
    )
