"""The connector interface: a sink only knows how to deliver one batch of events.

Shape: quix-streams' BatchingSink and Kafka Connect's put → flush → commit. The runtime
(`sinks.runtime.SinkRunner`, or `sinks.delivery.BatchDelivery` outside a consumer
group) owns the consumer, decoding, type filtering, retries, dead letters and
commits. A connector implements `deliver` and, if it holds connections, `start` and
`close`. A new sink is one module with a `Sink` subclass, one line in
`sinks.registry`, and a test.

Contract of `Sink.deliver(batch)`:

- `batch` is a non-empty sequence of `SinkEvent`s (the Kafka record as it came, a
  view of its CloudEvent attributes, and the SDK's decoded event, built on first use),
  all from one topic-partition, in offset order. A connector that sets
  `decodes = False` gets records the runtime only checked (`CloudEventView.check`,
  which refuses what `decode` refuses), never decoded.
- It returns one outcome per event, in the same order: `None` when the target
  acknowledged the event, or a `DeliveryError` saying why not and whether a retry may
  help (`retryable`, `retry_after`). `HELD` marks an event the connector did not try
  because an earlier event with the same key failed (per-key order); the runtime tries
  it again without counting that against its retries.
- Raising any exception means "nothing in this batch was delivered, a retry may help"
  (a lost connection, a database restart). Re-delivery of an event already delivered
  must be harmless (at least once), or, where the target allows, a no-op (audit).
- `deliver` is called for at most one batch per partition at a time, but batches of
  different partitions may be delivered concurrently.
"""

from __future__ import annotations

import abc
import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import ClassVar

from cloudevents.core.base import BaseCloudEvent

from schemas.cloudevent import CloudEventView
from schemas.codec import decode
from schemas.record import KafkaRecord
from vcstream.observability import HealthCheck
from vcstream.settings.sinks import SinkCommonSettings

# HTTP statuses worth retrying (Knative's rule): timeouts, conflicts, rate limits, 5xx
RETRYABLE_STATUSES = frozenset({404, 408, 409, 429})


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUSES or status >= 500


class SinkEvent:
    """One event to deliver: the Kafka record, its CloudEvent view, and the decoded event.

    The decoded event (`schemas.decode`, the SDK's object) is built on first use only: a
    connector that forwards the record's bytes (Knative) reads `view` and never pays
    for it. Pass `event` when it was decoded already."""

    __slots__ = ("_event", "layout", "record", "view")

    def __init__(self, event: BaseCloudEvent | None, record: KafkaRecord) -> None:
        self._event = event
        self.record = record
        self.view = CloudEventView(record)
        # for records the runtime checked: their header layout (`LayoutCheck.check`)
        self.layout: object | None = None

    @property
    def event(self) -> BaseCloudEvent:
        if self._event is None:
            self._event = decode(self.record)
        return self._event

    @property
    def type(self) -> str:
        if self._event is not None:
            return str(self._event.get_type())
        return self.view.type


class DeliveryError(Exception):
    """Why one event was not delivered; the runtime decides between retry and dead letter."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
        response: bytes | None = None,
        dest: str | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after
        self.response = response
        self.dest = dest

    @classmethod
    def from_status(
        cls,
        status: int,
        *,
        dest: str | None = None,
        response: bytes | None = None,
        retry_after: float | None = None,
    ) -> DeliveryError:
        return cls(
            f"target answered HTTP {status}",
            retryable=is_retryable_status(status),
            status=status,
            retry_after=retry_after,
            response=response,
            dest=dest,
        )


class PartitionHalted(Exception):
    """Raised by `deliver`: this partition must not go on (the audit sink's storage lost
    records). The runtime keeps the batch uncommitted and never retries it; the sink
    has said why (log, metric, health)."""


HELD = DeliveryError("not tried: an earlier event with the same key failed", retryable=True)

Outcome = DeliveryError | None


class Sink(abc.ABC):
    """A connector. Subclasses set `kind` and implement `deliver`."""

    kind: ClassVar[str]
    # False: the connector reads `SinkEvent.view`, so the runtime checks records rather
    # than decoding them (the same poison records refused, without building an event)
    decodes: ClassVar[bool] = True

    def __init__(self, settings: SinkCommonSettings, name: str | None = None) -> None:
        self.settings = settings
        self.name = name or self.kind

    @property
    def dest(self) -> str:
        """Where events go, for dead-letter headers and logs (never a secret)."""
        return self.kind

    async def start(self) -> None:
        """Open connections; called once before the first `deliver`."""
        return None

    async def close(self) -> None:
        """Release connections; called once, after the last `deliver` returned."""
        return None

    # True: the runtime passes each assigned partition's committed metadata to
    # `on_assign` (the audit sink's anchor)
    wants_committed: ClassVar[bool] = False
    # net allocations between the cyclic collector's young collections while the runtime
    # runs this sink (None: the runtime's `GC_YOUNG_THRESHOLD`)
    gc_young_threshold: ClassVar[int | None] = None

    def commit_metadata(self, topic: str, partition: int) -> str | None:
        """Kept by Kafka with the offset committed after a batch of this partition.

        The audit sink puts its chain's head there (`sinks.audit.anchors`)."""
        return None

    def commit_position(
        self, topic: str, partition: int, next_offset: int
    ) -> tuple[int, str | None] | None:
        """(offset, metadata) to commit once a batch up to `next_offset` is delivered;
        None: nothing yet. Kafka Connect's preCommit: a sink that makes data durable
        later than `deliver` returns (files rotated by size and time) commits less."""
        return next_offset, self.commit_metadata(topic, partition)

    def pending_commits(self) -> list[tuple[str, int, int, str | None]]:
        """(topic, partition, offset, metadata) that became committable outside a batch
        (a file rotated by time); asked for by the runtime on every turn of its loop."""
        return []

    async def flush(self, partitions: Sequence[tuple[str, int]] | None = None) -> None:
        """Make what was delivered durable now (on revocation, shutdown, and by replay
        after each batch); then `pending_commits` has it."""
        return None

    def on_assign(self, committed: Sequence[tuple[str, int, str | None]]) -> None:
        """With `wants_committed`: (topic, partition, metadata) committed for each newly
        assigned partition; runs in the consumer's thread before its first batch."""
        return None

    def health_checks(self) -> dict[str, HealthCheck]:
        """Named checks for `/healthz`, beyond the runtime's own."""
        return {}

    @abc.abstractmethod
    async def deliver(self, batch: Sequence[SinkEvent]) -> Sequence[Outcome]:
        """Deliver `batch`; one outcome per event (see the module docstring)."""

    async def __aenter__(self) -> Sink:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _Batch:
    """One batch given to a `KeyPool`: its events, outcomes, and what waits for them."""

    __slots__ = ("deliver_one", "done", "events", "left", "outcomes", "workers")

    def __init__(
        self,
        events: Sequence[SinkEvent],
        deliver_one: Callable[[SinkEvent], Awaitable[None]],
        done: asyncio.Future[None],
    ) -> None:
        self.events = events
        self.deliver_one = deliver_one
        self.done = done
        self.outcomes: list[Outcome] = [None] * len(events)
        self.left = 0  # key chains not yet delivered
        self.workers: set[asyncio.Task[None]] = set()  # delivering one of its chains


class KeyPool:
    """Deliver events one by one, keys concurrently, each key's events in order, with at
    most `concurrency` deliveries in flight for every batch of a sink together.

    Workers take whole keys' chains from one queue that every batch (one per partition
    in flight) adds to, so a key's events stay on one worker, in order. Workers per
    batch (`concurrency` each: 96 for the Knative sink's 32 connections with three
    partitions in flight) mostly waited for a connection, and that waiting was ~10% of
    its CPU (py-spy); a task per key and a semaphore, before, cost as much as the HTTP
    client did. A worker ends when the queue is empty; a batch that adds chains starts
    workers up to `concurrency`.

    `deliver_one` raises `DeliveryError` (or any exception, taken as retryable) when an
    event was not delivered; the events after it with the same key are `HELD`. A batch
    whose `deliver` is cancelled stops: its chains not begun are dropped, its
    deliveries in flight cancelled (their workers go on with other batches' chains).
    """

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self._chains: deque[tuple[_Batch, list[int]]] = deque()
        self._workers: set[asyncio.Task[None]] = set()

    async def deliver(
        self, batch: Sequence[SinkEvent], deliver_one: Callable[[SinkEvent], Awaitable[None]]
    ) -> list[Outcome]:
        if not batch:
            return []
        job = _Batch(batch, deliver_one, asyncio.get_running_loop().create_future())
        chains: dict[bytes | None, list[int]] = {}
        for index, item in enumerate(batch):
            chains.setdefault(item.record.key, []).append(index)
        job.left = len(chains)
        self._chains.extend((job, indexes) for indexes in chains.values())
        for _ in range(min(len(self._chains), self.concurrency - len(self._workers))):
            worker = asyncio.create_task(self._work())
            self._workers.add(worker)
            worker.add_done_callback(self._workers.discard)
        try:
            await job.done
        except asyncio.CancelledError:
            for worker in list(job.workers):
                worker.cancel()  # the worker drops this chain, not its own loop
            raise
        return job.outcomes

    async def _work(self) -> None:
        worker = asyncio.current_task()
        assert worker is not None
        while self._chains:
            job, indexes = self._chains.popleft()
            if job.done.cancelled():
                continue
            job.workers.add(worker)
            events, outcomes, deliver_one = job.events, job.outcomes, job.deliver_one
            try:  # the key's events in order; after one that failed, the rest are HELD
                for position, index in enumerate(indexes):
                    try:
                        await deliver_one(events[index])
                    except DeliveryError as exc:
                        outcomes[index] = exc
                    except Exception as exc:  # network errors and the like: worth a retry
                        outcomes[index] = DeliveryError(
                            f"{type(exc).__name__}: {exc}", retryable=True
                        )
                    if outcomes[index] is not None:
                        for later in indexes[position + 1 :]:
                            outcomes[later] = HELD
                        break
            except asyncio.CancelledError:
                if not job.done.cancelled():
                    raise  # the worker itself is cancelled (`close`)
                worker.uncancel()
                continue
            finally:
                job.workers.discard(worker)
            job.left -= 1
            if job.left == 0 and not job.done.done():
                job.done.set_result(None)

    async def close(self) -> None:
        """Cancel the workers (no batch is being delivered by then)."""
        workers = list(self._workers)
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        self._chains.clear()


async def deliver_per_key(
    batch: Sequence[SinkEvent],
    deliver_one: Callable[[SinkEvent], Awaitable[None]],
    concurrency: int,
) -> list[Outcome]:
    """One batch through a `KeyPool` of its own (a sink delivering several partitions
    at once keeps one pool for all of them)."""
    return await KeyPool(concurrency).deliver(batch, deliver_one)
