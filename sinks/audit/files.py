"""Audit storage as Avro Object Container Files (fastavro) in a local directory.

Layout: `<directory>/date=<YYYY-MM-DD>/vcenter=<uuid>/<topic>+<partition>+<first>-<last>.avro`
(`+` never occurs in a Kafka topic name), dated by the event's time.

Rotation, in the manner of Kafka Connect's storage sinks: each partition has one open
file (`….avro.tmp`) that batches are appended to as Avro blocks. It is closed when it
holds `rotateRecords` records or `rotateBytes` bytes, when it has been open
`rotateInterval`, when the next record belongs to another date or vCenter folder, and
on revocation or shutdown. Closing is write, fsync, rename (then the folder's fsync): a
visible file is complete, and its name carries the offset range it holds. Only then is
its newest record durable (`durable()`), and only that is committed to Kafka; after a
crash, `open()` deletes the open files, and Kafka delivers their records again.

Seals: after each rename a line `{"offset", "hash", "file", "records", "sealedAt"}` is
appended (and fsynced) to `<sealDirectory>/<topic>+<partition>.seals`. Deleting the
newest files leaves a shorter chain that is valid in itself; `verify` holds the chain
to the newest seal, so that loss is found without Kafka. Put the seal directory on other
storage (another volume, append-only) to keep it from whoever can edit the files.

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
import re
import time
from binascii import hexlify
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import fastavro

from schemas import avro
from sinks.audit.anchors import Anchor
from sinks.audit.encoding import BLOCK_BYTES, ContainerWriter, micros, string
from sinks.audit.record import V3_START, AuditRecord, Head, chain_encoded
from sinks.audit.store import EMPTY, AuditStore, ChainBroken, StoredRef, unique

if TYPE_CHECKING:
    from sinks.audit.query import AuditQuery
    from sinks.audit.verify import Anchors, VerifyReport

_NAME = re.compile(
    r"^(?P<topic>[A-Za-z0-9._-]+)\+(?P<partition>\d+)\+(?P<first>\d+)-(?P<last>\d+)\.avro$"
)
TMP_SUFFIX = ".tmp"
PENDING_PREFIX = ".pending-"  # written by releases before rotation; finished by open()
SEAL_SUFFIX = ".seals"


@dataclass(frozen=True, order=True)
class AuditFile:
    topic: str
    partition: int
    first: int
    last: int
    path: Path

    @classmethod
    def parse(cls, path: Path) -> AuditFile | None:
        match = _NAME.match(path.name)
        if match is None:
            return None
        return cls(
            match["topic"], int(match["partition"]), int(match["first"]), int(match["last"]), path
        )

    @staticmethod
    def name(topic: str, partition: int, first: int, last: int) -> str:
        return f"{topic}+{partition}+{first:020d}-{last:020d}.avro"


def read_file(path: Path) -> Iterator[AuditRecord]:
    with path.open("rb") as stream:
        for record in fastavro.reader(stream, reader_schema=avro.load("audit_record")):
            assert isinstance(record, dict)
            yield record


DAY = 86_400_000_000  # microseconds
_EPOCH_DAY = date(1970, 1, 1)
_HASH_SIZE = string("0" * 64)[:-64]  # a hash field's length prefix (64 hex digits)
_days: dict[int, str] = {}  # day number -> its date, as folders name it (bounded)


def _place(record: AuditRecord) -> tuple[str, str]:
    return place_of(micros(record["time"]), record["vcenterUuid"])


def place_of(time_micros: int, vcenter: str) -> tuple[str, str]:
    """The (date, vCenter) folder of a record of this time and vCenter."""
    day = time_micros // DAY
    text = _days.get(day)
    if text is None:
        if len(_days) >= 4096:
            _days.clear()
        text = _days[day] = (_EPOCH_DAY + timedelta(days=day)).isoformat()
    return text, vcenter or "unknown"


@dataclass
class _Open:
    """A partition's file being written: not durable, not committed, not visible."""

    folder: Path
    tmp: Path
    stream: IO[bytes]
    writer: ContainerWriter
    place: tuple[str, str]
    since: int  # the first microsecond of its date
    prev: Anchor  # the durable head it continues
    first: int
    opened_at: float
    head: Anchor
    records: int = 0
    written: int = 0  # the file's size at the last block written out


class AuditFiles(AuditStore):
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
        self.rotate_records = rotate_records
        self.rotate_bytes = rotate_bytes
        self.rotate_interval = rotate_interval
        self.codec = codec
        self._open: dict[tuple[str, int], _Open] = {}
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
        path = self.seals / f"{topic}+{partition}{SEAL_SUFFIX}"
        if not path.exists():
            return None
        lines = path.read_bytes().splitlines()
        return json.loads(lines[-1]) if lines else None

    def sealed_partitions(self) -> list[tuple[str, int]]:
        found = []
        for path in self.seals.glob(f"*{SEAL_SUFFIX}"):
            topic, _, partition = path.name.removesuffix(SEAL_SUFFIX).rpartition("+")
            if partition.isdigit():
                found.append((topic, int(partition)))
        return sorted(found)

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
            place = place_of(time_micros, vcenter)
            current = self._file_for(key, offset, place, head)
            at, hash_field = self._link(current, heads, at, hash_field)
            head = current.head
            if current.records >= self.rotate_records or current.written >= self.rotate_bytes:
                self._rotate(key)
        return self._finish(key, head, prev)

    def _link(
        self, current: _Open, heads: Sequence[Head], at: int, hash_field: bytes
    ) -> tuple[int, bytes]:
        """Chain `heads` from `at` onto `hash_field` (the previous record's `hash`,
        encoded) into `current` while they belong in it: until one of another folder, the
        file's record limit, or a block that takes it past its size limit. The index
        after the last one added, and its hash field."""
        writer = current.writer
        add = writer.parts.append
        copy = V3_START.copy
        since, until = current.since, current.since + DAY
        vcenter = current.place[1]
        stop = min(len(heads), at + self.rotate_records - current.records)
        rotate_bytes = self.rotate_bytes
        count, pending = writer.count, writer.pending
        first = at
        while at < stop:
            _, time_micros, in_vcenter, encoded = heads[at]
            if not since <= time_micros < until or (in_vcenter or "unknown") != vcenter:
                break
            # hash version 3: the record's Avro bytes but `hash`, i.e. its head and
            # `prevHash` (`record._hash_v3`, one copy of the prefix's state per record)
            digest = copy()
            digest.update(encoded)
            digest.update(hash_field)
            add(encoded)
            add(hash_field)
            hash_field = _HASH_SIZE + hexlify(digest.digest())
            add(hash_field)
            count += 1
            pending += len(encoded) + 2 * len(hash_field)
            at += 1
            if pending >= BLOCK_BYTES or current.written + pending >= rotate_bytes:
                # the block is compressed when written out: only then is the size known
                # (tell() is a syscall: asked per block, never per record)
                writer.count, writer.pending = count, pending
                self._write_block(current)
                add, count, pending = writer.parts.append, 0, 0
                if current.written >= rotate_bytes:
                    break
        writer.count, writer.pending = count, pending
        if at > first:
            current.records += at - first
            current.head = Anchor(heads[at - 1][0], hash_field[len(_HASH_SIZE) :].decode())
        return at, hash_field

    def _append(
        self, topic: str, partition: int, records: Sequence[AuditRecord], prev: Anchor
    ) -> Anchor:
        self._check_tail((topic, partition), prev)
        fresh = [r for r in records if r["offset"] > prev.offset]
        linked = (
            (record["offset"], _place(record), record["hash"], encoded)
            for record, encoded in chain_encoded(fresh, prev.hash)
        )
        return self._write(topic, partition, linked, prev)

    def _write(
        self,
        topic: str,
        partition: int,
        linked: Iterator[tuple[int, tuple[str, str], str, bytes]],
        prev: Anchor,
    ) -> Anchor:
        """Chained records, (offset, place, hash, encoding) each, into the open file."""
        key = (topic, partition)
        head = prev
        for offset, place, hash_, encoded in linked:
            current = self._file_for(key, offset, place, head)
            writer = current.writer
            writer.hold(encoded)
            current.records += 1
            head = current.head = Anchor(offset, hash_)
            if current.records >= self.rotate_records:
                self._rotate(key)
            elif (
                writer.pending >= BLOCK_BYTES
                or current.written + writer.pending >= self.rotate_bytes
            ):
                # the block is compressed when written out: only then is the size known
                # (tell() is a syscall: asked per block, never per record)
                self._write_block(current)
                if current.written >= self.rotate_bytes:
                    self._rotate(key)
        return self._finish(key, head, prev)

    def _file_for(
        self, key: tuple[str, int], offset: int, place: tuple[str, str], head: Anchor
    ) -> _Open:
        """The open file the record at `offset` goes in: one per date and vCenter folder."""
        current = self._open.get(key)
        if current is not None and current.place != place:
            self._rotate(key)
            current = None
        if current is None:
            current = self._start(*key, offset, place, head)
        return current

    def _finish(self, key: tuple[str, int], head: Anchor, prev: Anchor) -> Anchor:
        """After an append: what it added written out as whole blocks (memory is
        freed, the size is known)."""
        current = self._open.get(key)
        if current is not None and head != prev:
            self._write_block(current)
        return head

    @staticmethod
    def _write_block(current: _Open) -> None:
        current.writer.flush()
        current.written = current.stream.tell()

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

    def _start(
        self, topic: str, partition: int, first: int, place: tuple[str, str], prev: Anchor
    ) -> _Open:
        folder = self.root / f"date={place[0]}" / f"vcenter={place[1]}"
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / (AuditFile.name(topic, partition, first, 0) + TMP_SUFFIX)
        stream = tmp.open("wb")
        writer = ContainerWriter(stream, self.codec)
        since = date.fromisoformat(place[0]) - _EPOCH_DAY
        opened = _Open(
            folder,
            tmp,
            stream,
            writer,
            place,
            since.days * DAY,
            prev,
            first,
            time.monotonic(),
            prev,
        )
        self._open[(topic, partition)] = opened
        return opened

    def _rotate(self, key: tuple[str, int]) -> None:
        """Write, fsync, rename, seal: the open file becomes a durable, visible one."""
        current = self._open.pop(key)
        current.writer.flush()
        current.stream.flush()
        os.fsync(current.stream.fileno())
        size = current.stream.tell()
        current.stream.close()
        final = current.folder / AuditFile.name(*key, current.first, current.head.offset)
        os.replace(current.tmp, final)
        _fsync_dir(current.folder)
        self._seal(key, current, final)
        self._durable[key] = current.head
        self._tail[key] = (final, size)

    def _seal(self, key: tuple[str, int], closed: _Open, final: Path) -> None:
        self.seals.mkdir(parents=True, exist_ok=True)
        line = {
            "offset": closed.head.offset,
            "hash": closed.head.hash,
            "file": str(final.relative_to(self.root)),
            "records": closed.records,
            "sealedAt": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        path = self.seals / f"{key[0]}+{key[1]}{SEAL_SUFFIX}"
        with path.open("ab") as stream:
            stream.write(json.dumps(line).encode() + b"\n")
            stream.flush()
            os.fsync(stream.fileno())

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
            current.stream.close()
            current.tmp.unlink(missing_ok=True)

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


def _fsync_dir(folder: Path) -> None:
    """The rename itself survives a power cut only once the folder is synced."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
