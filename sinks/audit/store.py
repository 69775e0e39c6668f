"""The one interface of audit storage: append, head, verify, query; files or PostgreSQL.

    store = open_store(settings.sinks.audit)      # AuditFiles or AuditTable
    await store.open()                            # crash recovery / the table
    head = await store.append(topic, partition, records, prev=head)
    report = await store.verify(anchors)           # hash chains, seals, Kafka anchors
    async for record in store.query(AuditQuery(...)): ...
    await store.close()                           # open files made durable first

The sink, replay (`replay.targets.sink`, `replay.audit_check`) and the CLI use only
this; nothing else chooses between the backends. A backend that can take records
encoded up to their `prevHash` (`record.Head`s, from `record.AuditEncoder`: no record
dict per record) says so with `takes_heads` and implements `append_heads`; the sink
then appends through it. A new backend is one module.

The caller keeps each partition's chain head (`Anchor`) and passes it as `prev`: the
store chains the new records onto it and first checks that it still holds that record,
so storage that lost records (a deleted newest file or row) raises `ChainBroken`
instead of being silently chained over. `durable()` is the head that survives a crash
(a files backend keeps an open file per partition until it rotates); only that may be
committed to Kafka.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from sinks.audit.anchors import Anchor
from sinks.audit.record import GENESIS, AuditRecord, Head

if TYPE_CHECKING:
    from sinks.audit.query import AuditQuery
    from sinks.audit.verify import Anchors, VerifyReport
    from vcstream.settings.sinks import AuditSinkSettings

EMPTY = Anchor(-1, GENESIS)


class ChainBroken(Exception):
    """Storage no longer holds the chain head it was given (records lost or replaced):
    appending would hide the loss or fork the chain, so the partition must stop."""

    def __init__(self, topic: str, partition: int, detail: str) -> None:
        super().__init__(f"{topic}[{partition}]: {detail}")
        self.topic = topic
        self.partition = partition
        self.detail = detail


@dataclass(frozen=True, slots=True)
class StoredRef:
    """An offset and the event id stored for it (for `audit verify --against-topic`)."""

    partition: int
    offset: int
    id: str


class AuditStore(abc.ABC):
    """Append-only, hash-chained storage of audit records, per Kafka topic-partition."""

    @property
    @abc.abstractmethod
    def dest(self) -> str:
        """Where records go, for logs and dead letters (never a secret)."""

    async def open(self) -> None:
        """Prepare for writing (crash recovery, the table); before the first `append`."""
        return None

    async def close(self) -> None:
        """Make what was appended durable and release files and connections."""
        return None

    @abc.abstractmethod
    async def head(self, topic: str, partition: int) -> Anchor:
        """The newest record stored for a partition; `EMPTY` when there is none."""

    @abc.abstractmethod
    async def holds(self, topic: str, partition: int, anchor: Anchor) -> bool:
        """Whether the record at `anchor.offset` is stored with `anchor.hash`."""

    @abc.abstractmethod
    async def append(
        self, topic: str, partition: int, records: Sequence[AuditRecord], prev: Anchor
    ) -> Anchor:
        """Chain the records after `prev.offset` onto `prev` and store them (offset order,
        one partition); the new head. Raises `ChainBroken` if `prev` is no longer stored."""

    # True: this backend implements `append_heads`, which the sink then uses instead of
    # building a record dict per record for `append`
    takes_heads: ClassVar[bool] = False

    def append_heads(
        self, topic: str, partition: int, heads: Sequence[Head], prev: Anchor
    ) -> Anchor:
        """`append` for records encoded up to their `prevHash` (`record.Head`s), in the
        caller's thread (the sink's event loop, a replay's writer thread): the same
        records stored as `append` stores their dicts. Only for a backend that
        `takes_heads`."""
        raise NotImplementedError(
            f"{type(self).__name__} takes record dicts (`append`), not encoded heads"
        )

    def durable(self, topic: str, partition: int) -> tuple[int | None, Anchor | None]:
        """(first offset not yet durable or None if all is, newest durable head or None
        if unknown): what may be committed to Kafka. Durable at once unless overridden."""
        return None, None

    async def flush(self, topic: str | None = None, partition: int | None = None) -> None:
        """Make everything appended (to one partition, or all) durable now."""
        return None

    def due(self) -> list[tuple[str, int]]:
        """Partitions whose open file is due for rotation by time (`flush` them)."""
        return []

    @abc.abstractmethod
    async def partitions(self) -> list[tuple[str, int]]: ...

    @abc.abstractmethod
    async def verify(self, anchors: Anchors | None = None) -> VerifyReport:
        """Every partition's chain, its seal, and the heads committed to Kafka."""

    @abc.abstractmethod
    def query(self, query: AuditQuery) -> AsyncIterator[AuditRecord]:
        """Stored records matching `query`, each (topic, partition, offset) once, by time."""

    @abc.abstractmethod
    async def refs(self, topic: str, partition: int, start: int, stop: int) -> list[StoredRef]:
        """Every stored (offset, id) of a partition in [start, stop), duplicates included."""

    @property
    def unreadable(self) -> list[str]:
        """What `refs` could not read (files, a missing table), named."""
        return []


def open_store(settings: AuditSinkSettings, timeout: float | None = None) -> AuditStore:
    """The configured backend (not opened yet)."""
    if settings.backend == "files":
        from sinks.audit.files import AuditFiles

        files = settings.files
        return AuditFiles(
            files.directory,
            seal_directory=files.seal_directory,
            rotate_records=files.rotate_records,
            rotate_bytes=files.rotate_bytes,
            rotate_interval=files.rotate_interval.total_seconds(),
            codec=files.codec,
        )
    from sinks.audit.postgres import AuditTable

    assert settings.postgres is not None  # the settings model requires it
    return AuditTable(
        settings.postgres.dsn.get_secret_value(),
        settings.postgres.table,
        timeout=timeout or settings.delivery.timeout.total_seconds(),
    )


def unique(records: Iterator[AuditRecord]) -> Iterator[AuditRecord]:
    """Each (topic, partition, offset) once: the first stored wins."""
    seen: set[tuple[str, int, int]] = set()
    for record in records:
        where = (record["topic"], record["partition"], record["offset"])
        if where not in seen:
            seen.add(where)
            yield record
