"""Faust's aiokafka transport: read committed data, commit where processing got to, and
never skip a record unread.

**read_committed.** The producer writes events inside Kafka transactions; a consumer
reading uncommitted data would process events of aborted transactions, which the
producer then writes again. faust-streaming reads committed data only in its
`exactly_once` mode, which vcstream does not use (open bugs), so this transport sets the
isolation level itself.

**Commits.** Agents process each partition's records in offset order and report each
one done with `ack_processed(message)`, in that order too (streams.acks); the commit
position of a partition is simply the offset after the last record done, moved past the
transaction markers that follow it. The input topics are declared without Faust's acks
(`acks=False`): Faust's own bookkeeping (a list of acked offsets per partition, gaps
filled from intervals its fetch loop records) stalled on transactional input, one
transaction per commit interval, and grew without bound (`committable_offsets`).

**No record skipped.** faust-streaming 0.15 loses records around table recovery (at
start, after a rebalance), which a kill -9 test showed about one run in four:
- `flow_control.resume()`, which recovery calls several times, clears the streams'
  queues, and the records in them never reach an agent;
- its getmany leaves out records it fetched for partitions paused meanwhile, and the
  rest of a batch when flow stops or the generation changes;
- its streams skip records taken while flow control is suspended;
- it counts on seeking back to the committed offsets afterwards, but aiokafka seeks only
  partitions with a committed offset above 0 (not a new group, not a topic's first
  records), and the batch being fetched when the seek lands goes on being delivered,
  after which Faust's read offset discards the records fetched again.

So this consumer keeps, per partition, the offsets it handed to the streams that no
agent has taken yet. An agent asks `arrived(message)` before processing a record: only
the next record handed over passes. A record that went missing on the way, one fetched
and never handed over, or what a batch still carries after every partition's position
was reset, is held: the consumer seeks back to the first held offset before handing over
anything later from that partition.

Brokers are addressed as `vcstream-kafka://host:port`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import AsyncIterator, Generator, Iterable, Mapping
from typing import Any

import faust
from faust.transport import drivers
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message
from mode.services import WaitResults
from mode.utils.queues import ThrowableQueue

SCHEME = "vcstream-kafka"

log = logging.getLogger(__name__)


class ReadCommittedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    # Private touch point (faust-streaming 0.15.3, aiokafka 0.14.0): Faust builds the
    # aiokafka consumer without exposing its isolation level, and aiokafka takes the
    # level in its constructor only, handing it to its fetcher at start().
    # Guard: tests/streams/test_worker.py (an aborted transaction's event is not read)
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._isolation_level = "read_committed"
        return consumer


class Consumer(faust_aiokafka.Consumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._all_reset = 0  # bumped when every partition is sought (perform_seek)
        self._resets: Counter[TP] = Counter()  # bumped when one partition is sought
        self._held: dict[TP, int] = {}  # where to read again from, per partition
        self._in_transit: dict[TP, deque[int]] = {}  # handed to streams, not yet taken
        self._fetched: dict[TP, list[int]] = {}  # offsets of the batch being handed over
        self._position: dict[TP, int] = {}  # after the last record processed in order
        self._committing: dict[TP, int] = {}  # the positions handed to the last commit
        self._handed: dict[TP, int] = {}  # the last record handed over, per partition
        self._past_markers: set[TP] = set()  # handed records since the position was read
        # Faust's `changelog_topics` builds a new set on every call; asked twice a record.
        # Tables are declared before the app starts: read again at each assignment
        self._changelog_topics: frozenset[str] | None = None

    # Private touch point (faust-streaming 0.15.3): the only way to give the consumer
    # a thread of another class. Guard: the read_committed test (its thread's consumer).
    def _new_consumer_thread(self) -> ReadCommittedConsumerThread:
        return ReadCommittedConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        if self._held and self.app.flow_control.is_active():
            for tp, offset in list(self._held.items()):
                await self._read_again(tp, offset)
        await self._move_past_markers()
        all_reset, resets = self._all_reset, self._resets.copy()
        generation = self.app.consumer_generation_id
        seen: dict[TP, int] = {}
        try:
            async for tp, message in super().getmany(timeout):
                seen[tp] = message.offset
                if self._changelog(tp):
                    yield tp, message  # table recovery reads these while streams wait
                    continue
                if self._all_reset != all_reset:
                    # aiokafka may have left this partition where it was: read again
                    self._hold(tp, message.offset)
                    continue
                if self._resets[tp] != resets[tp]:
                    continue  # sought since it was fetched: it is fetched again
                if not self.app.flow_control.is_active():
                    self._hold(tp, message.offset)  # a stream would skip it now
                    continue
                held = self._held.get(tp)
                if held is not None and message.offset > held:
                    await self._read_again(tp, held)  # the rest of this batch is stale
                    continue
                if held is not None and message.offset == held:
                    del self._held[tp]
                transit = self._in_transit.get(tp)
                if transit is None:  # not setdefault: that builds a deque per record
                    transit = self._in_transit[tp] = deque()
                transit.append(message.offset)
                self._handed[tp] = message.offset
                self._past_markers.add(tp)
                yield tp, message
        finally:
            if self.app.consumer_generation_id == generation:
                self._hold_left_out(seen, all_reset, resets)

    def _hold_left_out(self, seen: Mapping[TP, int], all_reset: int, resets: Counter[TP]) -> None:
        # Records aiokafka returned that Faust's getmany did not hand over (a partition
        # paused meanwhile, flow stopped, the batch abandoned): aiokafka's position is
        # past them, so nothing would read them again
        for tp, offsets in self._fetched.items():
            if self._changelog(tp) or (
                self._resets[tp] != resets[tp] and all_reset == self._all_reset
            ):
                continue  # sought meanwhile: read again from there
            last = seen.get(tp, -1)
            missing = next((offset for offset in offsets if offset > last), None)
            if missing is not None:
                self._hold(tp, missing)
        self._fetched = {}

    # Private touch point (faust-streaming 0.15.3): the raw batch, to see what getmany
    # leaves out. Guard: tests/streams/test_transport.py (paused while fetched)
    async def _wait_next_records(self, timeout: float) -> Any:
        records, active = await super()._wait_next_records(timeout)
        self._fetched = {tp: [r.offset for r in batch] for tp, batch in (records or {}).items()}
        return records, active

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

    # Private touch point (faust-streaming 0.15.3, mode-streaming 0.7.1): Faust's fetch
    # loop (`Consumer._drain_messages`) hands each record to the streams with
    # `wait_first(callback(message), self.suspend_flow.wait())`, which mode runs as four
    # tasks (the callback, suspend_flow, the consumer's stopped and crashed events) and
    # an `asyncio.wait`: a tenth of the worker's CPU, for a callback that almost always
    # finishes without waiting (it puts the event into the stream's queue). So its
    # first step runs here, in the fetch loop's task; only a callback that waits (a
    # full queue, flow control) goes on racing suspend_flow as Faust races it, and any
    # call of another shape is mode's. The fetch loop ignores the result either way.
    # Guard: tests/streams/test_hand_over.py (the call in Faust's loop, and the race).
    async def wait_first(self, *coros: Any, timeout: Any = None) -> WaitResults:
        if (
            len(coros) != 2
            or timeout is not None
            or not asyncio.iscoroutine(coros[0])
            or self.suspend_flow.is_set()
            or self.should_stop
            or self._crashed.is_set()
        ):
            return await super().wait_first(*coros, timeout=timeout)
        delivery, suspended = coros
        try:
            waiting_on = delivery.send(None)
        except StopIteration as done:
            _close(suspended)  # never started: no "coroutine never awaited" warning
            return WaitResults([delivery], [done.value], False)
        except BaseException:
            _close(suspended)
            raise
        return await super().wait_first(_Resumed(delivery, waiting_on), suspended)

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

    def ack_processed(self, message: Message) -> None:
        """A record an agent has processed, reported in offset order per partition
        (streams.acks): every record read before it is done, so the partition may be
        committed up to it."""
        self._position[message.tp] = message.offset + 1

    def committable_offsets(self) -> dict[TP, int]:
        """Positions that moved since the last commit, of partitions still assigned."""
        assigned = self.assignment()
        return {
            tp: position
            for tp, position in self._position.items()
            if tp in assigned and self._committing.get(tp) != position
        }

    # Private touch point (faust-streaming 0.15.3): where Faust's commit (every
    # commit interval, at a rebalance, at a stop) takes its offsets. Faust's own
    # arithmetic (`_new_offset`) is left to topics with Faust acks, none of vcstream's:
    # it fills offset gaps from intervals that include the record that revealed the
    # gap, which is then acked too, and the duplicate stopped each commit at the next
    # transaction marker. Guard: tests/streams/test_commits.py
    def _filter_committable_offsets(self, tps: Iterable[TP]) -> dict[TP, int]:
        offsets = dict(super()._filter_committable_offsets(tps))
        ours = self.committable_offsets()
        self._committing.update(ours)
        offsets.update(ours)
        return offsets

    async def _read_again(self, tp: TP, offset: int) -> None:
        del self._held[tp]
        if tp not in self.assignment():
            return  # revoked meanwhile: its next owner reads from the committed offset
        log.info("reading %s[%s] again from offset %s", tp.topic, tp.partition, offset)
        await self.seek(tp, offset)

    def _changelog(self, tp: TP) -> bool:
        topics = self._changelog_topics
        if topics is None:
            topics = self._changelog_topics = frozenset(self.app.tables.changelog_topics)
        return tp.topic in topics

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
        self._committing.clear()
        self._handed.clear()
        self._past_markers.clear()
        self._changelog_topics = None
        await super().on_partitions_assigned(assigned, generation_id)

    def held_back(self) -> Mapping[TP, int]:
        """Partitions to read again, and from which offset (for tests)."""
        return dict(self._held)


class _Resumed:
    """Awaits the rest of a coroutine whose first step already ran (and gave `waiting_on`,
    what it waits for), as `await` would have: what it is sent or thrown goes on into it
    (a cancel too)."""

    __slots__ = ("_coroutine", "_waiting_on")

    def __init__(self, coroutine: Any, waiting_on: Any) -> None:
        self._coroutine = coroutine
        self._waiting_on = waiting_on

    def __await__(self) -> Generator[Any, Any, Any]:
        coroutine, waiting_on = self._coroutine, self._waiting_on
        while True:
            try:
                sent = yield waiting_on
            except GeneratorExit:
                coroutine.close()
                raise
            except BaseException as exc:
                try:
                    waiting_on = coroutine.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    waiting_on = coroutine.send(sent)
                except StopIteration as done:
                    return done.value


def _close(awaitable: Any) -> None:
    if asyncio.iscoroutine(awaitable):
        awaitable.close()


class HoldingQueue(ThrowableQueue[Any]):
    """A stream's queue that hands what flow control clears from it to the consumer.

    faust-streaming's recovery calls `flow_control.resume()`, which clears every
    stream's queue: the events in it would never reach an agent.
    """

    def __init__(self, *args: Any, app: faust.App, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._app = app

    def clear(self) -> None:
        dropped = []
        while not self.empty():
            dropped.append(self.get_nowait())
        consumer = self._app.consumer
        if isinstance(consumer, Consumer):
            consumer.hold_dropped(dropped)
        super().clear()


class App(faust.App):
    """A Faust app whose streams' queues hold what flow control clears (HoldingQueue)."""

    def FlowControlQueue(  # Faust's name for the queue factory
        self, maxsize: int | None = None, *, clear_on_resume: bool = False
    ) -> HoldingQueue:
        return HoldingQueue(
            maxsize=maxsize,
            flow_control=self.flow_control,
            clear_on_resume=clear_on_resume,
            app=self,
        )


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer


drivers.TRANSPORTS.aliases.setdefault(SCHEME, f"{__name__}:Transport")


def broker_urls(faust_broker: str) -> str:
    """`kafka://a;kafka://b` (streams.faust_kafka.faust_broker_options) on this transport."""
    return ";".join(
        SCHEME + "://" + url.split("://", 1)[-1] for url in faust_broker.split(";") if url
    )
