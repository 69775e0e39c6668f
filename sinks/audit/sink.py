"""The audit sink: append-only, idempotent, tamper-evident storage of every event.

Storage is one `sinks.audit.store.AuditStore` (Avro files or PostgreSQL). Re-delivery
of a record already stored, by (topic, partition, offset), stores nothing.

The sink holds itself to its anchor: when it gets a partition, it reads the chain head
it committed with its offset (Kafka commit metadata, `sinks.audit.anchors`) and checks
that storage still holds that record. From then on it keeps the head in memory and
never re-derives it from storage; the store checks before each append that the head is
still there. Storage that lost records (a deleted newest file or row, a directory
restored from an older copy) or holds a different chain **halts that partition**: an
error in the log, `vcstream_sink_audit_halted_partitions`, `/healthz` 503 naming it,
and nothing more written or committed for it until an operator has looked (restart
the sink once storage is repaired, or move the group's offset on purpose). Other
partitions carry on.

Commits: only what the store made durable (`AuditStore.durable`): for files, a
partition's offset moves when its open file rotates.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import ClassVar

from prometheus_client import Counter, Gauge

from schemas.record import ConsumedRecord
from sinks.audit.anchors import Anchor
from sinks.audit.record import AuditEncoder, AuditRecord, Head, audit_record, batch_tail, head_of
from sinks.audit.store import ChainBroken, open_store
from sinks.base import Outcome, PartitionHalted, Sink, SinkEvent
from vcstream.observability import HealthCheck
from vcstream.settings.sinks import AuditSinkSettings

log = logging.getLogger(__name__)

HALTED = Gauge(
    "vcstream_sink_audit_halted_partitions",
    "Partitions the audit sink stopped writing: storage lost records or forked the chain.",
    ["sink"],
)
CHAIN_BREAKS = Counter(
    "vcstream_sink_audit_chain_breaks_total",
    "Times the audit sink found storage no longer holding its chain head.",
    ["sink"],
)
Key = tuple[str, int]


class AuditSink(Sink):
    kind: ClassVar[str] = "audit"
    settings: AuditSinkSettings
    # the record is stored as Kafka held it: the runtime checks it, never decodes it
    decodes: ClassVar[bool] = False
    wants_committed: ClassVar[bool] = True
    # a partition buffers up to 4,000 records and a batch is 2,000: at the runtime's
    # 10,000 the collector walked the buffered records over and over, 0.65-1.2 s of CPU
    # per 200,000 records (12% of the sink, gc.callbacks); at 300,000 it seldom runs
    # (replay, which holds batches alike, collects at 200,000). The sink makes no cycles
    # per record; its objects are freed by reference counting.
    gc_young_threshold: ClassVar[int | None] = 300_000

    def __init__(self, settings: AuditSinkSettings, name: str | None = None) -> None:
        super().__init__(settings, name)
        self.store = open_store(settings)
        self._encoder = AuditEncoder()
        self._heads: dict[Key, Anchor] = {}  # in memory, never re-read mid-run
        self._anchors: dict[Key, Anchor | None] = {}  # committed, per assigned partition
        self._halted: dict[Key, str] = {}
        self._next: dict[Key, int] = {}  # offset after the newest delivered batch
        self._pending: set[Key] = set()  # became durable outside a batch
        self._locks: dict[Key, asyncio.Lock] = {}
        self._rotator: asyncio.Task[None] | None = None
        self._halted_gauge = HALTED.labels(self.name)
        self._breaks = CHAIN_BREAKS.labels(self.name)

    @property
    def dest(self) -> str:
        return self.store.dest

    async def start(self) -> None:
        await self.store.open()
        self._rotator = asyncio.create_task(self._rotate_by_time(), name="audit rotation")

    async def close(self) -> None:
        if self._rotator is not None:
            self._rotator.cancel()
            await asyncio.gather(self._rotator, return_exceptions=True)
        await self.store.close()

    def health_checks(self) -> dict[str, HealthCheck]:
        return {f"audit-chain:{self.name}": self._chain_health}

    def _chain_health(self) -> str | None:
        if not self._halted:
            return None
        return "; ".join(f"{t}[{p}] halted: {why}" for (t, p), why in sorted(self._halted.items()))

    # -- anchors -----------------------------------------------------------------------

    def on_assign(self, committed: Sequence[tuple[str, int, str | None]]) -> None:
        """The metadata committed with each assigned partition's offset: its anchor."""
        for topic, partition, metadata in committed:
            key = (topic, partition)
            self._anchors[key] = Anchor.parse(metadata)
            self._heads.pop(key, None)  # resolved against the anchor on the next batch
            self._halted.pop(key, None)  # checked afresh
        self._halted_gauge.set(len(self._halted))

    async def _resolve_head(self, key: Key) -> Anchor:
        """The head to chain onto: storage's, once it is shown to hold the anchor."""
        stored = await self.store.head(*key)
        anchor = self._anchors.get(key)
        if anchor is None or anchor.offset < 0:
            return stored
        if stored.offset >= anchor.offset and await self.store.holds(*key, anchor):
            return stored
        held = "nothing" if stored.offset < 0 else f"up to offset {stored.offset}"
        raise ChainBroken(
            *key,
            f"the committed chain head is offset {anchor.offset} ({anchor.hash[:12]}…), "
            f"storage holds {held}"
            + (
                " with another hash there (a forked chain)"
                if stored.offset >= anchor.offset
                else ""
            ),
        )

    def _halt(self, error: ChainBroken) -> PartitionHalted:
        key = (error.topic, error.partition)
        if key not in self._halted:
            log.error(
                "audit sink %s: halting %s[%d]: storage no longer holds the chain head: %s; "
                "nothing more is written or committed for it",
                self.name,
                *key,
                error.detail,
            )
            self._breaks.inc()
        self._halted[key] = error.detail
        self._halted_gauge.set(len(self._halted))
        return PartitionHalted(str(error))

    # -- delivery ----------------------------------------------------------------------

    async def deliver(self, batch: Sequence[SinkEvent]) -> Sequence[Outcome]:
        first = batch[0].record
        topic, partition = first.topic, first.partition
        assert topic is not None and partition is not None  # consumed records carry them
        key = (topic, partition)
        if key in self._halted:
            raise PartitionHalted(f"{key[0]}[{key[1]}]: {self._halted[key]}")
        now = datetime.now(UTC)
        # a store that takes heads gets records encoded as the replay encodes them
        # (`AuditEncoder`); others get record dicts
        takes_heads = self.store.takes_heads
        heads: list[Head] = []
        records: list[AuditRecord] = []
        if takes_heads:
            tail = batch_tail(now)
            heads = [self._head(item, now, tail) for item in batch]
            last = heads[-1][0]
        else:
            records = [audit_record(item, now) for item in batch]
            last = records[-1]["offset"]
        timeout = self.settings.delivery.timeout.total_seconds()
        async with self._lock(key), asyncio.timeout(timeout):
            try:
                head = self._heads.get(key)
                if head is None:
                    head = await self._resolve_head(key)
                if takes_heads:
                    # in the loop's own thread: a batch is a few ms of CPU that holds the
                    # GIL either way, and a worker thread per batch cost 4-6% more CPU
                    # (hand-offs) and 30-60 MB more RSS (its own malloc arena)
                    appended = self.store.append_heads(*key, heads, head)
                else:
                    appended = await self.store.append(*key, records, head)
                self._heads[key] = appended
            except ChainBroken as exc:
                raise self._halt(exc) from None
        self._next[key] = last + 1
        return [None] * len(batch)

    def _head(self, item: SinkEvent, now: datetime, tail: bytes) -> Head:
        """The record encoded up to its `prevHash`: from the message and what the
        runtime's check read (its layout known), else from the record's dict; `tail`
        is `batch_tail(now)`."""
        record = item.record
        layout = item.layout
        if layout is not None and isinstance(record, ConsumedRecord):
            message, view = record.message, item.view
            parts = self._encoder.parts(layout, message.headers(), view.attributes)
            return self._encoder.encode(message, parts, view.time(), view.data(), tail)
        return head_of(audit_record(item, now))

    def _lock(self, key: Key) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    # -- commits -----------------------------------------------------------------------

    def commit_position(
        self, topic: str, partition: int, next_offset: int
    ) -> tuple[int, str | None] | None:
        key = (topic, partition)
        if key in self._halted:
            return None
        first_open, durable = self.store.durable(topic, partition)
        if first_open is not None:  # an open file: commit up to where it starts
            anchor = durable if durable is not None and durable.offset >= 0 else None
            return first_open, anchor.text() if anchor is not None else None
        head = self._heads.get(key)
        return next_offset, head.text() if head is not None and head.offset >= 0 else None

    def commit_metadata(self, topic: str, partition: int) -> str | None:
        head = self._heads.get((topic, partition))
        return head.text() if head is not None and head.offset >= 0 else None

    def pending_commits(self) -> list[tuple[str, int, int, str | None]]:
        found = []
        for key in sorted(self._pending):
            if key in self._next:
                position = self.commit_position(*key, self._next[key])
                if position is not None:
                    found.append((*key, *position))
        self._pending.clear()
        return found

    async def flush(self, partitions: Sequence[Key] | None = None) -> None:
        keys = list(self._next) if partitions is None else list(partitions)
        for key in keys:
            if key in self._halted:
                continue
            async with self._lock(key):
                await self.store.flush(*key)
            self._pending.add(key)

    async def _rotate_by_time(self) -> None:
        """Close files that have been open `rotateInterval`, so a quiet partition's
        records are committed too (the runtime collects `pending_commits`)."""
        interval = self.settings.files.rotate_interval.total_seconds()
        while True:
            await asyncio.sleep(min(1.0, interval / 4))
            for key in self.store.due():
                if key not in self._halted:
                    await self.flush([key])
