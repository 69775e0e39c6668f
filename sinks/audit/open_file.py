"""A partition's file being written: records chained onto it a block at a time, then
closed durably (write, fsync, rename, the folder's fsync) so that a visible file is
complete and its name carries the offset range it holds.

Until it is closed it is not durable, not committed and not visible (`….avro.tmp`);
after a crash the store deletes it and Kafka delivers its records again.
"""

from __future__ import annotations

import os
import time
from binascii import hexlify
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sinks.audit.anchors import Anchor
from sinks.audit.encoding import BLOCK_BYTES, ContainerWriter, string
from sinks.audit.file_layout import DAY, TMP_SUFFIX, AuditFile, Place, day_start, folder_of
from sinks.audit.record import V3_START, Head

HASH_SIZE = string("0" * 64)[:-64]  # a hash field's length prefix (64 hex digits)


@dataclass
class OpenFile:
    """One partition's open file, for one date and vCenter folder (`place`)."""

    folder: Path
    tmp: Path
    stream: IO[bytes]
    writer: ContainerWriter
    place: Place
    since: int  # the first microsecond of its date
    prev: Anchor  # the durable head it continues
    first: int
    opened_at: float
    head: Anchor
    records: int = 0
    written: int = 0  # the file's size at the last block written out

    @classmethod
    def start(
        cls,
        root: Path,
        topic: str,
        partition: int,
        first: int,
        place: Place,
        prev: Anchor,
        codec: str,
    ) -> OpenFile:
        folder = folder_of(root, place)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / (AuditFile.name(topic, partition, first, 0) + TMP_SUFFIX)
        stream = tmp.open("wb")
        writer = ContainerWriter(stream, codec)
        return cls(
            folder,
            tmp,
            stream,
            writer,
            place,
            day_start(place),
            prev,
            first,
            time.monotonic(),
            prev,
        )

    def link(
        self,
        heads: Sequence[Head],
        at: int,
        hash_field: bytes,
        rotate_records: int,
        rotate_bytes: int,
    ) -> tuple[int, bytes]:
        """Chain `heads` from `at` onto `hash_field` (the previous record's `hash`,
        encoded) into this file while they belong in it: until one of another folder,
        the file's record limit, or a block that takes it past its size limit. The index
        after the last one added, and its hash field."""
        writer = self.writer
        add = writer.parts.append
        copy = V3_START.copy
        since, until = self.since, self.since + DAY
        vcenter = self.place[1]
        stop = min(len(heads), at + rotate_records - self.records)
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
            hash_field = HASH_SIZE + hexlify(digest.digest())
            add(hash_field)
            count += 1
            pending += len(encoded) + 2 * len(hash_field)
            at += 1
            if pending >= BLOCK_BYTES or self.written + pending >= rotate_bytes:
                # the block is compressed when written out: only then is the size known
                # (tell() is a syscall: asked per block, never per record)
                writer.count, writer.pending = count, pending
                self.write_block()
                add, count, pending = writer.parts.append, 0, 0
                if self.written >= rotate_bytes:
                    break
        writer.count, writer.pending = count, pending
        if at > first:
            self.records += at - first
            self.head = Anchor(heads[at - 1][0], hash_field[len(HASH_SIZE) :].decode())
        return at, hash_field

    def hold(self, offset: int, hash_: str, encoded: bytes) -> None:
        """One whole record (a record dict's encoding, `hash` included) added."""
        self.writer.hold(encoded)
        self.records += 1
        self.head = Anchor(offset, hash_)

    def write_block(self) -> None:
        """What is held written out as one block; the file's size noted."""
        self.writer.flush()
        self.written = self.stream.tell()

    def close_durably(self, topic: str, partition: int) -> tuple[Path, int]:
        """Write, fsync, rename: the visible file and its size."""
        self.writer.flush()
        self.stream.flush()
        os.fsync(self.stream.fileno())
        size = self.stream.tell()
        self.stream.close()
        final = self.folder / AuditFile.name(topic, partition, self.first, self.head.offset)
        os.replace(self.tmp, final)
        _fsync_dir(self.folder)
        return final, size

    def discard(self) -> None:
        self.stream.close()
        self.tmp.unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    """The rename itself survives a power cut only once the folder is synced."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
