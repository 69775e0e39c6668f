"""The sink runtime: a consumer group feeding one connector, committing after delivery.

Per partition, records wait in a bounded buffer; a batch (at most `batch.maxRecords`,
after at most `batch.maxWait`, or at once when it is what is left of a backlog and the
consumer has nothing more queued) is handed to `BatchDelivery`, one batch per partition
at a time and at most `batch.maxInFlight` at once, so per-key order holds. A partition
whose buffer reaches `batch.maxBuffered` is paused until it drains (backpressure, not
memory). Offsets are committed only after a batch was delivered, filtered or
dead-lettered; a batch that could not be settled goes back to the head of its buffer.
On revocation and on shutdown, batches in flight are finished and committed first.

Every call on the consumer while the loop runs is made from the fetching thread (one of
the runner's own), between fetches (`ConsumerCalls`); the next fetch is handed to it
before the batches of the turn run, so fetching overlaps delivering. Why one thread:
confluent-kafka (2.16) serialises calls on one client across threads, and a call waits
for the one in progress, polling in 1 ms sleeps. A commit from a thread of its own
waited out the fetch's poll (up to 100 ms, at ~1,000 wake-ups a second) and the next
fetch waited out the commit's broker round trip; a pause from the loop froze the loop
as long.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from schemas.record import ConsumedRecord, KafkaRecord
from sinks import metrics
from sinks.base import PartitionHalted, Sink
from sinks.deadletters import DeadLetterError, DeadLetterWriter
from sinks.delivery import BatchDelivery, BatchReport
from vcstream.kafka import client_config
from vcstream.logging import KAFKA_LOGGER
from vcstream.observability import Flag, Health, Heartbeat
from vcstream.settings.kafka import KafkaSettings

log = logging.getLogger(__name__)
# librdkafka's errors repeat with every reconnect: its logger rate-limits them
kafka_log = logging.getLogger(KAFKA_LOGGER)

PartitionKey = tuple[str, int]
RETRY_UNSETTLED_AFTER = 1.0  # seconds before a batch that raised is tried again, doubling
RETRY_UNSETTLED_MAX = 60.0  # ... up to this, while it keeps failing
REVOKE_TIMEOUT = 30.0  # how long a rebalance waits for batches in flight
# the loop turns at least every poll (0.1 s), or after a revoke (at most REVOKE_TIMEOUT):
# not turning for this long is a stuck process, the one thing /livez reports
LOOP_STALE_AFTER = 120.0
GC_YOUNG_THRESHOLD = 10_000  # net allocations between young collections (CPython: 700)
POLL_SECONDS = 0.1  # the longest a fetch waits for a record
# Settled offsets are committed at most this often (and on revocation and shutdown), as
# Kafka Connect commits on an interval: a commit per batch was 58 commits a second for
# the Knative sink at 300 events/s (bench.knative's trickle phase), each a broker round
# trip and its wake-ups. What a crash re-delivers grows by at most this long's events.
COMMIT_INTERVAL = 0.2


# The prefetch bounded as replay's reader bounds it (replay/reader.py says how it was
# measured): librdkafka's defaults, a 64 MB queue and 50 MB fetches, held the audit
# sink at ~300 MB RSS on 6 partitions, most of it records fetched ahead. The sink
# pauses a partition at `batch.maxBuffered` anyway. A user's `clientProperties` win.
BOUNDED_FETCH: dict[str, str] = {
    "queued.max.messages.kbytes": "4096",
    "fetch.queue.backoff.ms": "10",  # the default 1000 ms stalls a small queue
    "fetch.max.bytes": str(2 * 1024 * 1024),
    # A broker answers a fetch once it has 16 KB or after 20 ms, not at its first record:
    # at 300 events/s each answer carried one or two records, ~150-225 fetches a second,
    # each a wake-up of librdkafka's thread, the fetching thread and the loop, and its
    # own batch (bench.knative --only trickle). At 2,000/s 16 KB come in ~13 ms.
    "fetch.wait.max.ms": "20",
    "fetch.min.bytes": str(16 * 1024),
}


def bounded_fetch(kafka: KafkaSettings) -> dict[str, str]:
    return {
        name: str(kafka.client_properties.get(name, value)) for name, value in BOUNDED_FETCH.items()
    }


@dataclass
class ConsumerCalls:
    """What the fetching thread does on the consumer before its next fetch: pause and
    resume partitions, and send a commit (asynchronous: its answer comes to `on_commit`
    during a later fetch, so no fetch waits for a broker round trip)."""

    pause: list[TopicPartition] = field(default_factory=list)
    resume: list[TopicPartition] = field(default_factory=list)
    commit: list[TopicPartition] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.pause or self.resume or self.commit)


@dataclass
class _Partition:
    buffer: deque[tuple[KafkaRecord, float]] = field(default_factory=deque)
    task: asyncio.Task[BatchReport] | None = None
    batch: list[tuple[KafkaRecord, float]] = field(default_factory=list)
    paused: bool = False
    not_before: float = 0.0
    failures: int = 0  # batches in a row that could not be settled
    # when its last full batch went (monotonic): within `batch.maxWait` of it, the
    # partition is working through a backlog, and what is left of that backlog goes once
    # the consumer has nothing more queued (`_drained`), not after `maxWait`
    filled_at: float = float("-inf")


class SinkRunner:
    def __init__(
        self,
        sink: Sink,
        kafka: KafkaSettings,
        *,
        topics: list[str],
        group_id: str,
        dead_letter_topic: str,
        health: Health | None = None,
    ) -> None:
        self.sink = sink
        self.topics = topics
        self.batching = sink.settings.batch
        self.health = health
        self.kafka_health = Flag("connecting to Kafka")
        self.delivery_health = Flag(None)
        self.heartbeat = Heartbeat(LOOP_STALE_AFTER)
        if health is not None:
            # readiness only: a target or Kafka that is down is not cured by a restart
            health.add("kafka", self.kafka_health)
            health.add(f"sink:{sink.name}", self.delivery_health)
            health.add("loop", self.heartbeat, live=True)
            for name, check in sink.health_checks().items():
                health.add(name, check)
        self._stopping = asyncio.Event()
        self._dead_letters = DeadLetterWriter(kafka, dead_letter_topic)
        if health is not None:
            # a dead-letter topic that refuses records holds its partitions back: said
            # here and in vcstream_sink_dead_letter_failures_total, not just retried
            health.add("dead-letters", self._dead_letters.health)
        self._delivery = BatchDelivery(
            sink, self._dead_letters, stopping=self._stopping, health=self.delivery_health
        )
        self.report = self._delivery.totals
        # looked up once: the loop sets it on every turn
        self._paused_gauge = metrics.PAUSED_PARTITIONS.labels(sink.name)
        self._partitions: dict[PartitionKey, _Partition] = {}
        self._to_commit: dict[PartitionKey, TopicPartition] = {}
        # (offset, metadata) last sent to be committed per partition (forgotten if Kafka
        # refused it), while it stays assigned
        self._committed: dict[PartitionKey, tuple[int, str | None]] = {}
        self._calls = ConsumerCalls()  # for the next fetch to make
        # the last fetch came back short: librdkafka had no more records queued
        self._drained = False
        # every call on the consumer while the loop runs, fetches first, is made here
        self._fetcher: ThreadPoolExecutor | None = None
        self._committed_at = 0.0  # monotonic time the last commit was sent
        self._loop: asyncio.AbstractEventLoop | None = None
        self._consumer = Consumer(
            client_config(
                kafka,
                **{
                    "group.id": group_id,
                    "enable.auto.commit": False,
                    "auto.offset.reset": "earliest",
                    "statistics.interval.ms": 5000,
                    "stats_cb": self._on_stats,
                    "error_cb": self._on_error,
                    "on_commit": self._on_commit,
                    **bounded_fetch(kafka),
                },
            )
        )

    # -- the loop ----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, idle: Callable[[], None] | None = None) -> None:
        """Consume and deliver until `stop` is set, then finish batches in flight."""
        loop = self._loop = asyncio.get_running_loop()
        self._fetcher = ThreadPoolExecutor(1, thread_name_prefix=f"sink-{self.sink.name}-fetch")
        await self.sink.start()
        self._consumer.subscribe(self.topics, on_assign=self._on_assign, on_revoke=self._on_revoke)
        log.info("sink %s reading %s", self.sink.name, ", ".join(self.topics))
        fetch: asyncio.Future[list[Any]] | None = None
        collecting = gc.get_threshold()
        # Records are freed by reference counting; the cyclic collector only walks them.
        # At its default (a young collection every 700 net allocations) it walked every
        # buffered record many times over: ~10% of the audit and Knative sinks' CPU
        # (measured with the collector off and with these settings). What start-up
        # built stays for the process's life: frozen, no full collection walks it.
        gc.freeze()
        gc.set_threshold(self.sink.gc_young_threshold or GC_YOUNG_THRESHOLD, *collecting[1:])
        try:
            while not stop.is_set():
                self.heartbeat.beat()
                if fetch is None:
                    # handed to the fetching thread now, before the batches dispatched
                    # last turn run: `ensure_future(to_thread(...))` only submitted it
                    # once they had, so every fetch waited out a batch's CPU (the
                    # audit sink fetched and delivered in turn, never at once)
                    calls, self._calls = self._calls, ConsumerCalls()
                    fetch = loop.run_in_executor(self._fetcher, self._fetch, calls)
                # wake on new records or on a finished batch, whichever comes first, so
                # the next batch never waits for the poll timeout
                waiting: list[asyncio.Future[Any]] = [fetch]
                waiting += [s.task for s in self._partitions.values() if s.task is not None]
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if fetch.done():
                    messages, fetch = fetch.result(), None
                    self._take(messages)
                    if idle is not None and not messages:
                        idle()
                self._settle_finished()
                self._dispatch()
                self._apply_backpressure()
                self._dead_letters.poll()
        finally:
            try:
                if fetch is not None:
                    self._take(await fetch)  # buffered only; uncommitted, so re-read later
                await self._shutdown()
            finally:  # a shutdown that raised leaves the process's collector as it was
                gc.set_threshold(*collecting)
                gc.unfreeze()
                self._fetcher.shutdown(wait=False)

    def _fetch(self, calls: ConsumerCalls) -> list[Any]:
        """The consumer's calls the loop asked for, then records as soon as there is one,
        and whatever else is already fetched.

        librdkafka's `consume(n, timeout)` waits for n records or the timeout, so asking
        for a batch at once held every record up to 100 ms at low rates (the floor of
        the Knative sink's latency): with `batch.maxWait` 0 (deliver without waiting),
        wait for one record, then take what is queued. A sink that lets batches wait to
        fill (audit, slack) keeps the filling fetch: it wants full batches anyway."""
        if calls:
            self._call(calls)
        if self.batching.max_wait.total_seconds() > 0:
            filled: list[Any] = self._consumer.consume(self.batching.max_records, POLL_SECONDS)
            # fewer than asked: the queue ran dry within the poll (or every partition is
            # paused, and then their batches are full anyway)
            self._drained = len(filled) < self.batching.max_records
            return filled
        first: list[Any] = self._consumer.consume(1, POLL_SECONDS)
        if not first or self.batching.max_records == 1:
            return first
        return first + self._consumer.consume(self.batching.max_records - 1, 0)

    def _call(self, calls: ConsumerCalls) -> None:
        """Make `calls` on the consumer (from the fetching thread, or with no fetch in flight)."""
        if calls.pause:
            self._consumer.pause(calls.pause)
        if calls.resume:
            self._consumer.resume(calls.resume)
        if calls.commit:
            try:
                self._consumer.commit(offsets=calls.commit, asynchronous=True)
            except Exception as exc:  # a rebalance in progress: the next owner re-delivers
                log.warning("sink %s: commit failed: %s", self.sink.name, exc)

    def _take(self, messages: list[Any]) -> None:
        """Buffer the fetched messages as `ConsumedRecord`s, by partition.

        Per message only what must be: its error, its partition, the record view (the
        message's fields are read when a sink reads them); health once per fetch."""
        now = time.monotonic()
        partitions = self._partitions
        taken = False
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("sink %s: consumer error: %s", self.sink.name, error)
                continue
            taken = True
            key = (message.topic(), message.partition())
            state = partitions.get(key)
            if state is None:
                state = partitions[key] = _Partition()
            state.buffer.append((ConsumedRecord(message), now))
        if taken:
            self.kafka_health.ok()

    def _dispatch(self) -> None:
        now = time.monotonic()
        in_flight = sum(1 for state in self._partitions.values() if state.task is not None)
        max_wait = self.batching.max_wait.total_seconds()
        # a partition is paused at `max_buffered`, so its buffer grows no further: a
        # batch waiting for more only waited out `max_wait` (the audit sink's 5,000
        # records over 1,000 buffered delivered one batch per partition per second)
        full_at = min(self.batching.max_records, self.batching.max_buffered)
        drained = self._drained
        for key, state in self._partitions.items():
            if in_flight >= self.batching.max_in_flight:
                return
            if state.task is not None or not state.buffer or now < state.not_before:
                continue
            full = len(state.buffer) >= full_at
            # the rest of a backlog is not held back either: the consumer has nothing
            # more queued to fill it with (200,000 records left their last 1,706
            # waiting a whole `max_wait`, 1 s of the audit sink's 7). Timed, not a flag
            # of the last batch: a short fetch amid a backlog sent a partial batch, and
            # the backlog's rest then waited out `max_wait` again; a trickle, never a
            # full batch, still waits (tested)
            backlog_rest = drained and now - state.filled_at < max_wait
            if not full and now - state.buffer[0][1] < max_wait and not backlog_rest:
                continue
            if full:
                state.filled_at = now
            count = min(len(state.buffer), self.batching.max_records)
            state.batch = [state.buffer.popleft() for _ in range(count)]
            records = [record for record, _ in state.batch]
            state.task = asyncio.create_task(
                self._delivery.deliver(records, read_at=state.batch[0][1]),
                name=f"deliver {key[0]}[{key[1]}]",
            )
            in_flight += 1

    def _settle_finished(self) -> None:
        """Settle finished batches; every `COMMIT_INTERVAL`, hand their offsets to the
        next fetch to commit (`ConsumerCalls`).

        The commit is not awaited: a synchronous commit takes a broker round trip (30-100
        ms measured under load), and awaiting it held every partition's next batch back
        that long. Offsets settled meanwhile are merged per partition (the newest wins)."""
        for key, state in list(self._partitions.items()):
            if state.task is not None and state.task.done():
                for settled in self._settle(key, state):
                    self._to_commit[key] = settled
        for topic, partition, offset, metadata in self.sink.pending_commits():
            if (topic, partition) in self._partitions:  # still ours
                self._to_commit[(topic, partition)] = _position(topic, partition, offset, metadata)
        if not self._to_commit or self._calls.commit:
            return  # nothing new, or the last offsets handed over wait for their fetch
        now = time.monotonic()
        if now - self._committed_at >= COMMIT_INTERVAL:
            self._committed_at = now
            self._calls.commit = self._commit_offsets()

    def _commit_offsets(self) -> list[TopicPartition]:
        """The settled offsets to commit, taken; a position sent already is not sent
        again: the audit sink's files commit only when they rotate, and every batch in
        between settled the same position (a broker round trip per batch)."""
        done = self._committed
        offsets = [tp for key, tp in self._to_commit.items() if done.get(key) != _held(tp)]
        self._to_commit = {}
        for tp in offsets:
            done[(tp.topic, tp.partition)] = _held(tp)
        return offsets

    def _on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """A commit's answer (consumer thread): positions Kafka refused are sent again."""
        failed = [tp for tp in partitions if tp.error is not None]
        if error is None and not failed:
            return
        log.warning("sink %s: commit failed: %s", self.sink.name, error or failed[0].error)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._forget_committed, failed or partitions)

    def _forget_committed(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            key = (tp.topic, tp.partition)
            if self._committed.get(key) == _held(tp):
                del self._committed[key]

    async def _flush_commits(self) -> None:
        """Commit what settled and is not committed yet, now (no fetch in flight)."""
        self._settle_finished()
        offsets = {(tp.topic, tp.partition): tp for tp in self._calls.commit}
        offsets.update(((tp.topic, tp.partition), tp) for tp in self._commit_offsets())
        self._calls = ConsumerCalls()
        if offsets:
            try:
                await asyncio.get_running_loop().run_in_executor(
                    self._fetcher,
                    functools.partial(
                        self._consumer.commit, offsets=list(offsets.values()), asynchronous=False
                    ),
                )
            except Exception as exc:  # a rebalance in progress: the next owner re-delivers
                log.warning("sink %s: commit failed: %s", self.sink.name, exc)

    def _settle(self, key: PartitionKey, state: _Partition) -> list[TopicPartition]:
        """The offset to commit for a finished batch, or none: it goes back to its buffer."""
        task, batch = state.task, state.batch
        assert task is not None
        state.task, state.batch = None, []
        error = None if task.cancelled() else task.exception()
        if task.cancelled() or error is not None:
            state.buffer.extendleft(reversed(batch))
            if isinstance(error, PartitionHalted):
                # the sink said why; retrying cannot help, and the buffer, once full,
                # pauses the partition (backpressure)
                state.not_before = float("inf")
                return []
            state.failures += 1
            wait = min(RETRY_UNSETTLED_MAX, RETRY_UNSETTLED_AFTER * 2 ** (state.failures - 1))
            if isinstance(error, DeadLetterError):
                metrics.DEAD_LETTER_FAILURES.labels(self.sink.name).inc()
            if error is not None:
                log.error(
                    "sink %s: batch on %s[%d] not settled (try %d, again in %.0fs): %s",
                    self.sink.name,
                    *key,
                    state.failures,
                    wait,
                    error,
                )
            state.not_before = time.monotonic() + wait
            return []
        state.failures = 0
        last = batch[-1][0].offset
        assert last is not None
        position = self.sink.commit_position(*key, last + 1)
        if position is None:
            return []
        return [_position(*key, *position)]

    def _apply_backpressure(self) -> None:
        """Pause a partition at `max_buffered`, resume it at half: by the next fetch."""
        for key, state in self._partitions.items():
            held = len(state.buffer) + len(state.batch)
            if not state.paused and held >= self.batching.max_buffered:
                self._calls.pause.append(TopicPartition(*key))
                state.paused = True
            elif state.paused and held < self.batching.max_buffered // 2 + 1:
                self._calls.resume.append(TopicPartition(*key))
                state.paused = False
        paused = sum(1 for state in self._partitions.values() if state.paused)
        self._paused_gauge.set(paused)

    # -- rebalances and shutdown -------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.kafka_health.ok()
        log.info("sink %s assigned %s", self.sink.name, _names(partitions))
        for tp in partitions:  # what the group holds for it now is not known here
            self._committed.pop((tp.topic, tp.partition), None)
        if self.sink.wants_committed and partitions:
            # before the partitions' first records are fetched: the sink checks its
            # storage against what it committed (the audit anchor). Unreadable
            # commits fail the assignment loudly rather than skip the check.
            committed = consumer.committed(partitions, timeout=REVOKE_TIMEOUT)
            self.sink.on_assign([(tp.topic, tp.partition, tp.metadata) for tp in committed])

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Runs in the consumer's thread: finish the revoked partitions' batches, commit them.

        The commit is made here, in the callback, before the partitions move: a commit
        from another thread would wait for this callback to return.
        """
        keys = [(tp.topic, tp.partition) for tp in partitions]
        offsets: list[TopicPartition] = []
        if self._loop is not None and not self._loop.is_closed():
            future = asyncio.run_coroutine_threadsafe(self._release(keys), self._loop)
            try:
                offsets = future.result(REVOKE_TIMEOUT)
            except Exception as exc:
                log.warning("sink %s: revoke did not finish cleanly: %s", self.sink.name, exc)
        if offsets:
            try:
                consumer.commit(offsets=offsets, asynchronous=False)
            except Exception as exc:
                log.warning("sink %s: commit on revoke failed: %s", self.sink.name, exc)
        log.info("sink %s revoked %s", self.sink.name, _names(partitions))

    async def _release(self, keys: list[PartitionKey]) -> list[TopicPartition]:
        """Wait for the batches in flight on `keys`; their offsets; forget their buffers."""
        # settled offsets not yet sent go with the revoke's commit; the commit in flight
        # is not awaited: it waits for this callback to return (a deadlock)
        offsets = {key: self._to_commit.pop(key) for key in keys if key in self._to_commit}
        self._drop_calls(keys, offsets)
        for key in keys:
            state = self._partitions.get(key)
            if state is None or state.task is None:
                continue
            try:
                await asyncio.wait_for(asyncio.shield(state.task), REVOKE_TIMEOUT - 5)
            except BaseException:
                state.task.cancel()
            if state.task.done():
                offsets.update((key, offset) for offset in self._settle(key, state))
        # what the sink still holds open becomes durable and goes with this commit
        await self.sink.flush([key for key in keys if key in self._partitions])
        for topic, partition, offset, metadata in self.sink.pending_commits():
            key = (topic, partition)
            position = _position(topic, partition, offset, metadata)
            if key in keys:
                offsets[key] = position
            elif key in self._partitions:
                self._to_commit[key] = position
        for key in keys:
            self._partitions.pop(key, None)
            self._committed.pop(key, None)
        return list(offsets.values())

    def _drop_calls(
        self, keys: list[PartitionKey], offsets: dict[PartitionKey, TopicPartition]
    ) -> None:
        """Take `keys` out of the calls the next fetch would make; their offsets not yet
        sent go into `offsets` (unless a newer one is there): the revoke commits them."""
        revoked = set(keys)
        calls = self._calls
        for tp in calls.commit:
            if (tp.topic, tp.partition) in revoked:
                offsets.setdefault((tp.topic, tp.partition), tp)
        calls.commit, calls.pause, calls.resume = (
            [tp for tp in listed if (tp.topic, tp.partition) not in revoked]
            for listed in (calls.commit, calls.pause, calls.resume)
        )

    async def _shutdown(self) -> None:
        self._stopping.set()
        tasks = [state.task for state in self._partitions.values() if state.task is not None]
        if tasks:
            await asyncio.wait(tasks)
        self._settle_finished()
        await self.sink.flush(list(self._partitions))  # what it holds open, made durable
        self._settle_finished()
        await self._flush_commits()
        await asyncio.get_running_loop().run_in_executor(self._fetcher, self._consumer.close)
        await self.sink.close()
        self._dead_letters.close()
        log.info(
            "sink %s stopped: %d delivered, %d filtered, %d dead-lettered",
            self.sink.name,
            self.report.delivered,
            self.report.filtered,
            self.report.dead_lettered,
        )

    # -- librdkafka callbacks (consumer thread) ----------------------------------------

    def _on_stats(self, stats_json: str) -> None:
        stats = json.loads(stats_json)
        lag = 0
        for topic in stats.get("topics", {}).values():
            for partition in topic.get("partitions", {}).values():
                if partition.get("partition", -1) >= 0:
                    lag += partition_lag(partition)
        metrics.CONSUMER_LAG.labels(self.sink.name).set(lag)

    def _on_error(self, error: KafkaError) -> None:
        kafka_log.warning("sink %s: Kafka: %s", self.sink.name, error)
        if error.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT):
            self.kafka_health.down(f"Kafka unreachable: {error.str()}")


def partition_lag(stats: dict[str, Any]) -> int:
    """Records of one partition (librdkafka's statistics) the group has not committed.

    librdkafka's `consumer_lag` is -1 while the group has no committed offset, which is
    the case from a new group's first record until its first delivery: a sink whose
    target was down from the start showed a lag of 0 over a growing backlog. Then the
    group reads from the log start (`auto.offset.reset` earliest), so that is where the
    lag counts from. The end is the last stable offset for a read_committed consumer, as
    librdkafka's own lag takes it.
    """
    lag = int(stats.get("consumer_lag", -1))
    if lag >= 0:
        return lag
    end = int(stats.get("ls_offset", -1))
    if end < 0:
        end = int(stats.get("hi_offset", -1))
    start = int(stats.get("lo_offset", -1))
    if int(stats.get("committed_offset", -1)) >= 0 or end < 0 or start < 0:
        return 0  # not known yet (the next statistics will tell)
    return max(0, end - start)


def _position(topic: str, partition: int, offset: int, metadata: str | None) -> TopicPartition:
    if metadata is None:
        return TopicPartition(topic, partition, offset)
    return TopicPartition(topic, partition, offset, metadata=metadata)


def _held(position: TopicPartition) -> tuple[int, str | None]:
    """What a commit of `position` leaves Kafka holding for its partition."""
    return position.offset, position.metadata


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"
