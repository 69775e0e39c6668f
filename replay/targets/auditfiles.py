"""Replay into audit files (`--to audit` with `backend: files`), straight into the store.

The audit sink's path (`replay.targets.sink`: an event loop, the sinks runtime's
delivery, a thread per store call) made every batch durable before the replay saved
its position, so each partition's file was closed, fsynced, renamed and sealed after
every batch: three fsyncs per partition per 2,000 records, and files of a few hundred
records. Here the store is written in the replay's writer thread and each partition
keeps one open file across batches. Durability comes at checkpoints: every
`CHECKPOINT_SECONDS` (or the store's `rotateInterval` if shorter), and when the replay
ends or stops, the open files are closed (fsync, rename, seal) and only then does the
replay save its position (and commit under `--group`): see `ReplayTarget.sync`.

After a kill -9, what the last checkpoint saved is in visible files; the open files of
the run are `.tmp` files that the store's recovery deletes on the next start, and
`--resume` reads again from the saved position. A file that rotated by size between
two checkpoints holds records beyond the saved position: the store skips records at or
below its head, so they are neither written twice nor counted twice (the replay's
counts come from the saved position, not from the store).

Records are stored exactly as the audit sink stores them (`sinks.audit.record`): the
same files, chains, seals and verification. A store that no longer holds a
partition's head (`ChainBroken`: a file deleted or changed under the replay) stops the
replay with that error; nothing is dead-lettered.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime

from replay.targets.base import Position, ReplayItem, ReplayTarget
from sinks.audit.anchors import Anchor
from sinks.audit.files import AuditFiles
from sinks.audit.record import AuditEncoder, Head, LayoutParts, audit_record, batch_tail, head_of
from sinks.audit.store import open_store
from sinks.delivery import type_matcher
from vcstream.settings.sinks import AuditSinkSettings

# the longest a replay runs past its saved position: what a kill -9 makes it read again
CHECKPOINT_SECONDS = 5.0


class AuditFilesTarget(ReplayTarget):
    def __init__(self, settings: AuditSinkSettings, recover: bool = True) -> None:
        store = open_store(settings)
        assert isinstance(store, AuditFiles), "the files backend only"
        self.store = store
        self.name = f"audit ({self.store.dest})"
        self.batch_records = settings.batch.max_records
        self.checkpoint_seconds = min(CHECKPOINT_SECONDS, store.rotate_interval)
        self._types = type_matcher(settings.types)
        self._heads: dict[int, Anchor] = {}
        self._topic = ""  # the replay's one topic, known from its first record
        self._encoder = AuditEncoder()
        self._synced_at = time.monotonic()
        if recover:  # under --workers the coordinator recovered once, before any worker
            self.store.recover()

    def accepts(self, event_type: str) -> bool:
        return self._types.fullmatch(event_type) is not None

    def write(self, items: Sequence[ReplayItem]) -> set[Position]:
        now = datetime.now(UTC)
        tail = batch_tail(now)
        by_partition: dict[int, list[Head]] = {}
        for item in items:
            partition, head = self.encode(item, now, tail)
            heads = by_partition.get(partition)
            if heads is None:
                heads = by_partition[partition] = []
            heads.append(head)
        for partition, heads in by_partition.items():
            topic = self._topic
            prev = self._heads.get(partition)
            if prev is None:  # where an earlier (interrupted) replay left the chain
                prev = self.store.head_blocking(topic, partition)
            self._heads[partition] = self.store.append_heads(topic, partition, heads, prev)
        return set()

    def encode(self, item: ReplayItem, now: datetime, tail: bytes) -> tuple[int, Head]:
        """(partition, the record encoded up to its `prevHash`): by the audit encoder,
        from what the replay's check read of the message (its layout's parts kept on
        the layout), else from the record dict; `tail` is `batch_tail(now)`."""
        message, layout, when = item.message, item.layout, item.time
        if message is None or layout is None or when is None:
            # checked the slow way: the record read from its view
            record = audit_record(item, now)
            self._topic = record["topic"]
            return record["partition"], head_of(record)
        parts = layout.derived
        if parts is None:
            parts = layout.derived = LayoutParts(message.headers(), layout.attributes)
        self._topic = message.topic()  # type: ignore[assignment]  # set when consumed
        return message.partition(), self._encoder.encode(message, parts, when, item.data, tail)  # type: ignore[return-value]

    def sync(self, force: bool = False) -> bool:
        if not force and time.monotonic() - self._synced_at < self.checkpoint_seconds:
            return False
        self.store.rotate_blocking()
        self._synced_at = time.monotonic()
        return True

    def close(self) -> None:
        self.store.rotate_blocking()
