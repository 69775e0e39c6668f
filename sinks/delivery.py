"""Deliver one batch of records through a sink with retries and dead letters.

This is the documented way to use a sink outside a consumer group (replay does):

    sink = sinks.registry.create_sink("knative", settings)
    dead_letters = DeadLetterWriter(settings.kafka, sinks.registry.dead_letter_topic(...))
    async with sink:
        report = await BatchDelivery(sink, dead_letters).deliver(records)

`deliver` decodes each record (`schemas.decode`; poison → dead letter at once), or for
a sink that reads the record's bytes only checks it (`LayoutCheck`: what
`CloudEventView.check` refuses, by the layouts of records it checked before), skips
events whose type matches none of the sink's `types` globs, hands the rest to the
sink, retries what failed per the sink's `delivery` settings (Knative's DeliverySpec:
`retry`, `backoffPolicy`, `backoffDelay`, `Retry-After` capped by `retryAfterMax`),
dead-letters what still fails or is not worth retrying, and returns only once every
record is delivered, filtered or acknowledged by the dead-letter topic. So when it
returns, the batch's offsets may be committed; when it raises, none may.

Records must carry `topic`, `partition` and `offset` (`KafkaRecord.from_confluent`
sets them): dead-letter headers name them, and the audit sink is idempotent by them.
A batch given to `deliver` should come from one partition, in offset order; to deliver
several partitions at once, call `deliver` concurrently, one batch per partition.

Each event has its own retry count: a batch partly delivered retries only the rest,
and an event `HELD` behind a failed event of the same key is tried again without
spending its own retries.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from schemas import InvalidRecord, decode
from schemas.cloudevent import LayoutCheck
from schemas.deadletter import dead_letter
from schemas.record import KafkaRecord
from sinks import metrics
from sinks.base import HELD, DeliveryError, Outcome, PartitionHalted, Sink, SinkEvent
from vcstream.logging import redact
from vcstream.observability import Flag
from vcstream.settings.sinks import DeliverySettings

log = logging.getLogger(__name__)
MAX_TYPES_KEPT = 1024  # event types whose match against a sink's `types` is remembered


class DeadLetters(Protocol):
    def send(self, record: KafkaRecord) -> None: ...

    async def flush(self) -> None: ...


@dataclass
class BatchReport:
    """What became of a batch; `delivered + filtered + dead_lettered` = records given."""

    delivered: int = 0
    filtered: int = 0
    dead_lettered: int = 0
    retried: int = 0

    def add(self, other: BatchReport) -> None:
        self.delivered += other.delivered
        self.filtered += other.filtered
        self.dead_lettered += other.dead_lettered
        self.retried += other.retried


def backoff(delivery: DeliverySettings, retry_number: int) -> float:
    """Seconds before retry `retry_number` (1-based): Knative's linear or exponential."""
    base = delivery.backoff_delay.total_seconds()
    if delivery.backoff_policy == "linear":
        return base * retry_number
    return float(base * 2 ** (retry_number - 1))


def type_matcher(globs: Sequence[str]) -> re.Pattern[str]:
    """One compiled pattern for all of a sink's `types` globs (case-sensitive)."""
    return re.compile("|".join(f"(?:{fnmatch.translate(glob)})" for glob in globs))


@dataclass(slots=True)
class _Pending:
    item: SinkEvent
    attempts: int = 0
    error: DeliveryError | None = field(default=None)


class BatchDelivery:
    def __init__(
        self,
        sink: Sink,
        dead_letters: DeadLetters,
        stopping: asyncio.Event | None = None,
        health: Flag | None = None,
    ) -> None:
        self.sink = sink
        self.dead_letters = dead_letters
        self.delivery = sink.settings.delivery
        self._types = type_matcher(sink.settings.types)
        self._wanted: dict[str, bool] = {}  # event type → whether `types` matches it
        # `*` (the default) matches every type, even none: no lookup per event (3% of
        # the audit sink's loop, py-spy)
        self._every_type = "*" in sink.settings.types
        self._check = LayoutCheck().check  # layouts learned over every batch of the sink
        self._stage = f"sink:{sink.name}"
        # set on shutdown: a batch waiting for its next retry gives up (uncommitted)
        self._stopping = stopping or asyncio.Event()
        self._health = health
        self.totals = BatchReport()  # every batch so far, updated as outcomes arrive
        # metric children looked up once: `labels()` per event was a measurable share of
        # a replay into audit files (a lock and a dict lookup per call)
        self._delivered = metrics.DELIVERED.labels(sink.name)
        self._latency = metrics.DELIVERY_LATENCY.labels(sink.name)
        self._filtered = metrics.FILTERED.labels(sink.name)
        self._retried = metrics.RETRIED.labels(sink.name)

    async def deliver(
        self, records: Sequence[KafkaRecord], read_at: float | None = None
    ) -> BatchReport:
        """Deliver, filter or dead-letter every record; raises if that is not certain."""
        report = BatchReport()
        events: list[SinkEvent] = []
        decodes, check = self.sink.decodes, self._check
        for record in records:
            try:
                if decodes:
                    item = SinkEvent(decode(record), record)
                else:
                    item = SinkEvent(None, record)
                    item.layout = check(item.view)
            except InvalidRecord as exc:
                self._dead_letter(record, report, "poison", exc, attempts=0)
                continue
            events.append(item)
        return await self.deliver_decoded(events, read_at, report)

    async def deliver_decoded(
        self,
        events: Sequence[SinkEvent],
        read_at: float | None = None,
        report: BatchReport | None = None,
    ) -> BatchReport:
        """`deliver` for records already decoded (replay decodes them to count and
        filter): the same type filter, retries and dead letters, without a second decode."""
        report = report or BatchReport()
        started = time.monotonic() if read_at is None else read_at
        pending = self._wanted_events(events, report)
        while pending:
            pending = await self._attempt(pending, report, started)
        self._filtered.inc(report.filtered)
        await self.dead_letters.flush()
        return report

    def _wanted_events(self, events: Sequence[SinkEvent], report: BatchReport) -> list[_Pending]:
        """The events whose type the sink's `types` match; the rest are counted filtered."""
        if self._every_type:
            return [_Pending(item) for item in events]
        pending: list[_Pending] = []
        wanted = self._wanted
        for item in events:
            kind = item.type
            match = wanted.get(kind)
            if match is None:
                if len(wanted) >= MAX_TYPES_KEPT:  # bounded whatever the topic holds
                    wanted.clear()
                match = wanted[kind] = self._types.fullmatch(kind) is not None
            if match:
                pending.append(_Pending(item))
            else:
                self._count(report, "filtered")
        return pending

    async def _attempt(
        self, pending: list[_Pending], report: BatchReport, read_at: float
    ) -> list[_Pending]:
        outcomes = await self._call_sink(pending)
        if all(outcome is HELD for outcome in outcomes):  # a connector bug; never spin on it
            stuck = DeliveryError("the sink held every event of the batch", retryable=True)
            outcomes = [stuck] * len(outcomes)
        retry: list[_Pending] = []
        wait = 0.0
        delivered = 0
        now = time.monotonic()
        for entry, outcome in zip(pending, outcomes, strict=True):
            if outcome is None:
                delivered += 1
                continue
            if outcome is HELD:
                retry.append(entry)
                continue
            entry.attempts += 1
            entry.error = outcome
            if not outcome.retryable or entry.attempts > self.delivery.retry:
                self._dead_letter_event(entry, report)
                continue
            self._count(report, "retried")
            self._retried.inc()
            wait = max(wait, self._wait_before(entry.attempts, outcome))
            retry.append(entry)
        # one latency for the batch's events: read together, acknowledged by now
        metrics.observe_many(self._latency, now - read_at, delivered)
        # counted once per attempt, not per event
        report.delivered += delivered
        self.totals.delivered += delivered
        self._delivered.inc(delivered)
        if self._health is not None:
            if retry and wait > 0:
                self._health.down(redact(f"retrying: {_first_error(retry)}"))
            elif report.delivered:
                self._health.ok()
        if retry and wait > 0:
            log.info(
                "sink %s: %d events failed (%s); retrying in %.2fs",
                self.sink.name,
                len(retry),
                _first_error(retry),
                wait,
            )
            await self._sleep(wait)
        return retry

    async def _call_sink(self, pending: list[_Pending]) -> Sequence[Outcome]:
        try:
            outcomes = await self.sink.deliver([entry.item for entry in pending])
        except DeliveryError as exc:
            return [exc] * len(pending)
        except PartitionHalted:
            raise  # not a failure to retry, let alone to dead-letter: the partition stops
        except Exception as exc:  # the whole batch failed: a connection, a restart
            error = DeliveryError(f"{type(exc).__name__}: {exc}", retryable=True)
            return [error] * len(pending)
        if len(outcomes) != len(pending):
            raise RuntimeError(
                f"sink {self.sink.name} returned {len(outcomes)} outcomes for {len(pending)} events"
            )
        return outcomes

    def _count(self, report: BatchReport, outcome: str) -> None:
        setattr(report, outcome, getattr(report, outcome) + 1)
        setattr(self.totals, outcome, getattr(self.totals, outcome) + 1)

    def _wait_before(self, retry_number: int, error: DeliveryError) -> float:
        wait = backoff(self.delivery, retry_number)
        if error.retry_after is not None:
            cap = self.delivery.retry_after_max.total_seconds()
            wait = max(wait, min(error.retry_after, cap))
        return wait

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            return
        raise asyncio.CancelledError("sink is stopping; the batch stays uncommitted")

    def _dead_letter_event(self, entry: _Pending, report: BatchReport) -> None:
        error = entry.error
        assert error is not None
        log.warning(
            "sink %s: dead-lettering %s/%s@%s after %d attempts: %s",
            self.sink.name,
            entry.item.record.topic,
            entry.item.record.partition,
            entry.item.record.offset,
            entry.attempts,
            error,
        )
        self._dead_letter(entry.item.record, report, "delivery", error, entry.attempts)

    def _dead_letter(
        self,
        record: KafkaRecord,
        report: BatchReport,
        reason: str,
        error: Exception,
        attempts: int,
    ) -> None:
        if reason == "poison":
            log.warning(
                "sink %s: poison record %s/%s@%s: %s",
                self.sink.name,
                record.topic,
                record.partition,
                record.offset,
                error,
            )
        delivery_error = error if isinstance(error, DeliveryError) else None
        self.dead_letters.send(
            dead_letter(
                record,
                stage=self._stage,
                reason="poison" if reason == "poison" else "delivery",
                error=error,
                status=delivery_error.status if delivery_error else None,
                dest=(delivery_error.dest if delivery_error else None) or self.sink.dest,
                data=delivery_error.response if delivery_error else None,
                attempts=attempts,
            )
        )
        self._count(report, "dead_lettered")
        metrics.DEAD_LETTERED.labels(self.sink.name, reason).inc()


def _first_error(retry: list[_Pending]) -> str:
    for entry in retry:
        if entry.error is not None:
            return str(entry.error)
    return "held"
