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
from sinks.audit.record import AuditRecord, audit_record
from sinks.delivery import type_matcher
from vcstream.settings.sinks import AuditSinkSettings

# the longest a replay runs past its saved position: what a kill -9 makes it read again
CHECKPOINT_SECONDS = 5.0


class AuditFilesTarget(ReplayTarget):
    def __init__(self, settings: AuditSinkSettings, recover: bool = True) -> None:
        files = settings.files
        self.store = AuditFiles(
            files.directory,
            seal_directory=files.seal_directory,
            rotate_records=files.rotate_records,
            rotate_bytes=files.rotate_bytes,
            rotate_interval=files.rotate_interval.total_seconds(),
            codec=files.codec,
        )
        self.name = f"audit ({self.store.dest})"
        self.batch_records = settings.batch.max_records
        self.checkpoint_seconds = min(CHECKPOINT_SECONDS, files.rotate_interval.total_seconds())
        self._types = type_matcher(settings.types)
        self._heads: dict[int, Anchor] = {}
        self._synced_at = time.monotonic()
        if recover:  # under --workers the coordinator recovered once, before any worker
            self.store.recover()

    def accepts(self, event_type: str) -> bool:
        return self._types.fullmatch(event_type) is not None

    def write(self, items: Sequence[ReplayItem]) -> set[Position]:
        now = datetime.now(UTC)
        by_partition: dict[int, list[AuditRecord]] = {}
        for item in items:
            if item.attributes is None:  # checked the slow way: read from its view
                record = audit_record(item, now)
            else:
                record = audit_record(item, now, item.attributes, item.time, item.data)
            by_partition.setdefault(record["partition"], []).append(record)
        for partition, records in by_partition.items():
            topic: str = records[0]["topic"]
            head = self._heads.get(partition)
            if head is None:  # where an earlier (interrupted) replay left the chain
                head = self.store.head_blocking(topic, partition)
            self._heads[partition] = self.store.append_blocking(topic, partition, records, head)
        return set()

    def sync(self, force: bool = False) -> bool:
        if not force and time.monotonic() - self._synced_at < self.checkpoint_seconds:
            return False
        self.store.rotate_blocking()
        self._synced_at = time.monotonic()
        return True

    def close(self) -> None:
        self.store.rotate_blocking()
