"""Audit storage as Avro Object Container Files in a local directory: the store.

Its parts, one concept each: where a record goes and what files are called
(`file_layout`), the file being written and how it is closed (`open_file`), the seals
(`seals`), the container format (`encoding`).

Rotation, in the manner of Kafka Connect's storage sinks: each partition has one open
file (`….avro.tmp`) that batches are appended to as Avro blocks. It is closed when it
holds `rotateRecords` records or `rotateBytes` bytes, when it has been open
`rotateInterval`, when the next record belongs to another date or vCenter folder, and
on revocation or shutdown. Closing is write, fsync, rename (then the folder's fsync): a
visible file is complete, and its name carries the offset range it holds. Only then is
its newest record durable (`durable()`), and only that is committed to Kafka; after a
crash, `open()` deletes the open files, and Kafka delivers their records again.

Seals (`seals`): after each rename the file's head is sealed apart from the files, so
that `verify` finds the newest files deleted without Kafka.

Idempotence: records at or below the head the caller passes are skipped, so
re-delivery never writes a record twice. One directory belongs to one sink process at a
time (a local disk, or one volume the partitions never leave): a partition moved to a
member whose directory lacks its committed head is halted by the sink, not restarted as
a new chain (several members: share the directory, or use PostgreSQL).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from sinks.audit.anchors import Anchor
from sinks.audit.encoding import BLOCK_BYTES, string
from sinks.audit.file_layout import (
    PENDING_PREFIX,
    TMP_SUFFIX,
    AuditFile,
    Place,
    place_of,
    read_file,
    record_place,
)
from sinks.audit.open_file import OpenFile
from sinks.audit.record import AuditRecord, Head, chain_encoded
from sinks.audit.seals import Seals
from sinks.audit.store import EMPTY, AuditStore, ChainBroken, StoredRef, unique

if TYPE_CHECKING:
    from sinks.audit.query import AuditQuery
    from sinks.audit.verify import Anchors, VerifyReport


class AuditFiles(AuditStore):
    takes_heads: ClassVar[bool] = True

    def __init__(
        self,
        root: Path,
        *,
        seal_directory: Path | None = None,
        rotate_records: int = 100_000,
        rotate_bytes: int = 64 * 1024 * 1024,
        rotate_interval: float = 600.0,
        codec: str = "snappy",
    ) -> None:
        self.root = root
        self.seals = seal_directory or root / "_seals"
        self._seals = Seals(self.seals, root)
        self.rotate_records = rotate_records
        self.rotate_bytes = rotate_bytes
        self.rotate_interval = rotate_interval
        self.codec = codec
        self._open: dict[tuple[str, int], OpenFile] = {}
        self._durable: dict[tuple[str, int], Anchor] = {}
        # the visible file holding each partition's durable head, and its size: checked
        # before every append, so a deleted or replaced newest file stops the partition
        self._tail: dict[tuple[str, int], tuple[Path, int]] = {}
        self._unreadable: list[str] = []

    @property
    def dest(self) -> str:
        return f"audit files {self.root}"

    # -- reading -----------------------------------------------------------------------

    def files(self, topic: str | None = None, partition: int | None = None) -> list[AuditFile]:
        """Visible files, in (topic, partition, offset) order."""
        pattern = f"{topic or '*'}+{'*' if partition is None else partition}+*.avro"
        found = (AuditFile.parse(path) for path in self.root.glob(f"date=*/vcenter=*/{pattern}"))
        return sorted(f for f in found if f is not None)

    async def partitions(self) -> list[tuple[str, int]]:
        return self.stored_partitions()

    def stored_partitions(self) -> list[tuple[str, int]]:
        return sorted({(f.topic, f.partition) for f in self.files()})

    async def head(self, topic: str, partition: int) -> Anchor:
        return await asyncio.to_thread(self._head, topic, partition)

    def head_blocking(self, topic: str, partition: int) -> Anchor:
        """`head`, in the caller's thread (a replay's writer thread)."""
        return self._head(topic, partition)

    def _head(self, topic: str, partition: int) -> Anchor:
        files = self.files(topic, partition)
        if not files:
            return EMPTY
        newest = max(files, key=lambda f: f.last)
        head = EMPTY
        for record in read_file(newest.path):
            if record["offset"] >= head.offset:
                head = Anchor(record["offset"], record["hash"])
        key = (topic, partition)
        self._durable[key] = head
        self._tail[key] = (newest.path, newest.path.stat().st_size)
        return head

    async def holds(self, topic: str, partition: int, anchor: Anchor) -> bool:
        return await asyncio.to_thread(self._holds, topic, partition, anchor)

    def _holds(self, topic: str, partition: int, anchor: Anchor) -> bool:
        for audit_file in self.files(topic, partition):
            if audit_file.first <= anchor.offset <= audit_file.last:
                for record in read_file(audit_file.path):
                    if record["offset"] == anchor.offset and record["hash"] == anchor.hash:
                        return True
        return False

    def newest_seal(self, topic: str, partition: int) -> dict[str, Any] | None:
        return self._seals.newest(topic, partition)

    def sealed_partitions(self) -> list[tuple[str, int]]:
        return self._seals.partitions()

    # -- writing -----------------------------------------------------------------------

    async def open(self) -> None:
        await asyncio.to_thread(self.recover)

    def recover(self) -> None:
        """Drop the open files of a crashed run (never committed: Kafka re-delivers them);
        finish a batch an older release left half-renamed."""
        if not self.root.exists():
            return
        for marker in self.root.glob(PENDING_PREFIX + "*.json"):
            for tmp, final in json.loads(marker.read_text()):
                if Path(tmp).exists():
                    os.replace(tmp, final)
            marker.unlink()
        for leftover in self.root.rglob("*" + TMP_SUFFIX):
            leftover.unlink()

    async def append(
        self, topic: str, partition: int, records: Sequence[AuditRecord], prev: Anchor
    ) -> Anchor:
        return await asyncio.to_thread(self._append, topic, partition, records, prev)

    def append_blocking(
        self, topic: str, partition: int, records: Sequence[AuditRecord], prev: Anchor
    ) -> Anchor:
        """`append`, in the caller's thread: the records go to the partition's open file
        (durable once it rotates: `rotate_blocking`, or a limit reached)."""
        return self._append(topic, partition, records, prev)

    def append_heads(
        self, topic: str, partition: int, heads: Sequence[Head], prev: Anchor
    ) -> Anchor:
        """`append_blocking` for records encoded up to their `prevHash` (`Head`s, built
        without a record dict): chained and written exactly as `append` would, the same
        bytes and files (tests/sinks/test_audit_files.py), with no per-record object
        but the hash field itself."""
        key = (topic, partition)
        self._check_tail(key, prev)
        if heads and heads[0][0] <= prev.offset:  # re-delivered: what is stored is skipped
            heads = [head for head in heads if head[0] > prev.offset]
        head, at = prev, 0
        hash_field = string(prev.hash)
        while at < len(heads):
            offset, time_micros, vcenter, _ = heads[at]
            current = self._file_for(key, offset, place_of(time_micros, vcenter), head)
            at, hash_field = current.link(
                heads, at, hash_field, self.rotate_records, self.rotate_bytes
            )
            head = current.head
            if current.records >= self.rotate_records or current.written >= self.rotate_bytes:
                self._rotate(key)
        return self._finish(key, head, prev)

    def _append(
        self, topic: str, partition: int, records: Sequence[AuditRecord], prev: Anchor
    ) -> Anchor:
        self._check_tail((topic, partition), prev)
        fresh = [r for r in records if r["offset"] > prev.offset]
        linked = (
            (record["offset"], record_place(record), record["hash"], encoded)
            for record, encoded in chain_encoded(fresh, prev.hash)
        )
        return self._write(topic, partition, linked, prev)

    def _write(
        self,
        topic: str,
        partition: int,
        linked: Iterator[tuple[int, Place, str, bytes]],
        prev: Anchor,
    ) -> Anchor:
        """Chained records, (offset, place, hash, encoding) each, into the open file."""
        key = (topic, partition)
        head = prev
        for offset, place, hash_, encoded in linked:
            current = self._file_for(key, offset, place, head)
            current.hold(offset, hash_, encoded)
            head = current.head
            if current.records >= self.rotate_records:
                self._rotate(key)
            elif (
                current.writer.pending >= BLOCK_BYTES
                or current.written + current.writer.pending >= self.rotate_bytes
            ):
                # the block is compressed when written out: only then is the size known
                # (tell() is a syscall: asked per block, never per record)
                current.write_block()
                if current.written >= self.rotate_bytes:
                    self._rotate(key)
        return self._finish(key, head, prev)

    def _file_for(self, key: tuple[str, int], offset: int, place: Place, head: Anchor) -> OpenFile:
        """The open file the record at `offset` goes in: one per date and vCenter folder."""
        current = self._open.get(key)
        if current is not None and current.place != place:
            self._rotate(key)
            current = None
        if current is None:
            current = self._open[key] = OpenFile.start(
                self.root, *key, offset, place, head, self.codec
            )
        return current

    def _finish(self, key: tuple[str, int], head: Anchor, prev: Anchor) -> Anchor:
        """After an append: what it added written out as whole blocks (memory is
        freed, the size is known)."""
        current = self._open.get(key)
        if current is not None and head != prev:
            current.write_block()
        return head

    def _check_tail(self, key: tuple[str, int], prev: Anchor) -> None:
        current = self._open.get(key)
        if current is not None:
            if current.head != prev:
                raise ChainBroken(*key, f"open file holds up to {current.head}, not {prev}")
            if not current.tmp.exists():
                raise ChainBroken(*key, f"the open file {current.tmp.name} was deleted")
        tail = self._tail.get(key)
        if tail is None or prev.offset < 0:
            return
        path, size = tail
        try:
            actual = path.stat().st_size
        except FileNotFoundError:
            raise ChainBroken(*key, f"{path.name}, the newest durable file, was deleted") from None
        if actual != size:
            raise ChainBroken(*key, f"{path.name} changed size ({size} -> {actual} bytes)")

    def _rotate(self, key: tuple[str, int]) -> None:
        """Write, fsync, rename, seal: the open file becomes a durable, visible one."""
        current = self._open.pop(key)
        final, size = current.close_durably(*key)
        self._seals.add(*key, current.head, final, current.records)
        self._durable[key] = current.head
        self._tail[key] = (final, size)

    def durable(self, topic: str, partition: int) -> tuple[int | None, Anchor | None]:
        key = (topic, partition)
        current = self._open.get(key)
        if current is not None:
            return current.first, current.prev
        return None, self._durable.get(key)

    async def flush(self, topic: str | None = None, partition: int | None = None) -> None:
        keys = [k for k in self._open if topic is None or k == (topic, partition)]
        if keys:
            await asyncio.to_thread(self._rotate_all, keys)

    def due(self) -> list[tuple[str, int]]:
        now = time.monotonic()
        return [k for k, f in self._open.items() if now - f.opened_at >= self.rotate_interval]

    def rotate_blocking(self) -> None:
        """Every open file made durable (fsync, rename, seal), in the caller's thread."""
        self._rotate_all(list(self._open))

    def _rotate_all(self, keys: list[tuple[str, int]]) -> None:
        for key in keys:
            if key in self._open:
                self._rotate(key)

    async def close(self) -> None:
        await self.flush()

    def discard(self, topic: str, partition: int) -> None:
        """Drop a partition's open file (its records were never committed)."""
        current = self._open.pop((topic, partition), None)
        if current is not None:
            current.discard()

    # -- verify, query, refs -----------------------------------------------------------

    async def verify(self, anchors: Anchors | None = None) -> VerifyReport:
        from sinks.audit.verify import verify_files

        return await asyncio.to_thread(verify_files, self, anchors)

    async def query(self, query: AuditQuery) -> AsyncIterator[AuditRecord]:
        from sinks.audit.query import query_files

        found = await asyncio.to_thread(lambda: list(unique(query_files(self, query))))
        found.sort(key=lambda r: (r["time"], r["topic"], r["partition"], r["offset"]))
        for record in found:
            yield record

    async def refs(self, topic: str, partition: int, start: int, stop: int) -> list[StoredRef]:
        return await asyncio.to_thread(self._refs, topic, partition, start, stop)

    def _refs(self, topic: str, partition: int, start: int, stop: int) -> list[StoredRef]:
        found = []
        for audit_file in self.files(topic, partition):
            # the name says which offsets a file holds; files wholly outside are not opened
            if audit_file.last < start or audit_file.first >= stop:
                continue
            try:
                records = list(read_file(audit_file.path))
            except Exception as exc:  # fastavro raises many types for damaged files
                self._unreadable.append(f"{audit_file.path.relative_to(self.root)}: {exc}")
                continue
            found += [
                StoredRef(partition, r["offset"], r["id"])
                for r in records
                if start <= r["offset"] < stop and r["partition"] == partition
            ]
        return found

    @property
    def unreadable(self) -> list[str]:
        return self._unreadable
