"""Audit storage as Avro Object Container Files (fastavro) in a local directory.

Layout: `<directory>/date=<YYYY-MM-DD>/vcenter=<uuid>/<topic>+<partition>+<first>-<last>.avro`
(`+` never occurs in a Kafka topic name), dated by the event's time. A file is
written under a temporary name, synced, then renamed: a visible file is complete, and
its name carries the offset range it holds.

A batch may become several files (dates, vCenters, `maxFileBytes`). To keep it
all-or-nothing, the renames are listed first in a pending marker (itself written then
renamed); `recover()` at start finishes a batch whose marker exists and deletes
temporary files that have none. Idempotence: per partition, records at or below the
highest stored offset are skipped, so re-delivery never writes a record twice.

One directory belongs to one sink process at a time (a local disk, or one volume per
consumer group member that never moves): `recover()` takes any temporary file it finds
for a leftover of a crash.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

import fastavro

from schemas import avro
from sinks.audit.record import GENESIS, AuditRecord, chain

_NAME = re.compile(
    r"^(?P<topic>[A-Za-z0-9._-]+)\+(?P<partition>\d+)\+(?P<first>\d+)-(?P<last>\d+)\.avro$"
)
TMP_SUFFIX = ".tmp"
PENDING_PREFIX = ".pending-"
RECORD_OVERHEAD = 200  # bytes per record besides the event JSON, for size-based rotation


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


class AuditFiles:
    def __init__(self, root: Path, max_file_bytes: int = 64 * 1024 * 1024) -> None:
        self.root = root
        self.max_file_bytes = max_file_bytes
        self._heads: dict[tuple[str, int], tuple[int, str]] = {}
        self._lock = threading.Lock()

    # -- reading -----------------------------------------------------------------------

    def files(self, topic: str | None = None, partition: int | None = None) -> list[AuditFile]:
        """Visible files, in (topic, partition, offset) order."""
        pattern = f"{topic or '*'}+{'*' if partition is None else partition}+*.avro"
        found = (AuditFile.parse(path) for path in self.root.glob(f"date=*/vcenter=*/{pattern}"))
        return sorted(f for f in found if f is not None)

    def partitions(self) -> list[tuple[str, int]]:
        return sorted({(f.topic, f.partition) for f in self.files()})

    def head(self, topic: str, partition: int) -> tuple[int, str]:
        """(highest stored offset, its hash) of a partition; (-1, GENESIS) when empty.

        Re-checked against the file names on every call, so a partition written by
        another process while this one did not own it is never forked.
        """
        files = self.files(topic, partition)
        if not files:
            return (-1, GENESIS)
        newest = max(files, key=lambda f: f.last)
        key = (topic, partition)
        with self._lock:
            cached = self._heads.get(key)
        if cached is not None and cached[0] == newest.last:
            return cached
        head = (-1, GENESIS)
        for record in read_file(newest.path):
            if record["offset"] >= head[0]:
                head = (record["offset"], record["hash"])
        with self._lock:
            self._heads[key] = head
        return head

    # -- writing -----------------------------------------------------------------------

    def recover(self) -> None:
        """Finish batches whose renames were all decided; drop files of undecided ones."""
        if not self.root.exists():
            return
        for marker in self.root.glob(PENDING_PREFIX + "*.json"):
            for tmp, final in json.loads(marker.read_text()):
                if Path(tmp).exists():
                    os.replace(tmp, final)
            marker.unlink()
        for leftover in self.root.rglob("*" + TMP_SUFFIX):
            leftover.unlink()

    def append(self, topic: str, partition: int, records: list[AuditRecord]) -> tuple[int, str]:
        """Store the records not stored yet (offset order, one partition); the new head."""
        last_offset, last_hash = self.head(topic, partition)
        fresh = [r for r in records if r["offset"] > last_offset]
        if not fresh:
            return last_offset, last_hash
        linked = list(chain(fresh, last_hash))
        renames = [self._write_tmp(topic, partition, group) for group in self._groups(linked)]
        marker = self.root / f"{PENDING_PREFIX}{topic}+{partition}.json"
        _write_synced(marker.with_suffix(TMP_SUFFIX), json.dumps(renames).encode())
        os.replace(marker.with_suffix(TMP_SUFFIX), marker)
        for tmp, final in renames:
            os.replace(tmp, final)
        marker.unlink()
        head = (linked[-1]["offset"], linked[-1]["hash"])
        with self._lock:
            self._heads[(topic, partition)] = head
        return head

    def _groups(self, records: list[AuditRecord]) -> Iterator[list[AuditRecord]]:
        """Runs of records sharing a date and vCenter, split past `max_file_bytes`."""
        by_place: dict[tuple[str, str], list[AuditRecord]] = {}
        for record in records:
            place = (record["time"].astimezone(UTC).date().isoformat(), record["vcenterUuid"])
            by_place.setdefault(place, []).append(record)
        for group in by_place.values():
            current: list[AuditRecord] = []
            size = 0
            for record in group:
                estimate = len(record["event"]) + RECORD_OVERHEAD
                if current and size + estimate > self.max_file_bytes:
                    yield current
                    current, size = [], 0
                current.append(record)
                size += estimate
            yield current

    def _write_tmp(self, topic: str, partition: int, records: list[AuditRecord]) -> list[str]:
        first = records[0]
        folder = (
            self.root
            / f"date={first['time'].astimezone(UTC).date().isoformat()}"
            / f"vcenter={first['vcenterUuid'] or 'unknown'}"
        )
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / AuditFile.name(topic, partition, first["offset"], records[-1]["offset"])
        tmp = final.with_name(final.name + TMP_SUFFIX)
        with tmp.open("wb") as stream:
            fastavro.writer(stream, avro.load("audit_record"), records, codec="deflate")
            stream.flush()
            os.fsync(stream.fileno())
        return [str(tmp), str(final)]


def _write_synced(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())
