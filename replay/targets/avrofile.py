"""Events as an Avro object container file of audit records (`schemas/audit_record.avsc`),
the shape audit storage keeps, hash chain per partition included, so a replayed file
is read and checked with the same tools as the audit store.

Each batch is flushed as whole Avro blocks, so the file size after a batch is a valid
place to cut: a resumed replay truncates there and appends to the container.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import fastavro

from replay.targets.base import Position, ReplayItem, ReplayTarget
from schemas import avro


class AvroFileTarget(ReplayTarget):
    def __init__(self, stream: IO[bytes], path: Path, prev_hashes: dict[int, str]) -> None:
        self.name = f"file:{path}"
        self._stream = stream
        self._prev_hashes = prev_hashes
        schema = avro.load("audit_record")
        self._writer = fastavro.write.Writer(stream, schema, codec="deflate")

    @classmethod
    def open(cls, path: Path, resume_at: int | None = None) -> AvroFileTarget:
        if resume_at is None or resume_at == 0:
            return cls(path.open("w+b"), path, {})
        stream = path.open("r+b")
        stream.truncate(resume_at)
        stream.seek(0)
        # the chain continues from the last record of each partition already in the file
        prev: dict[int, str] = {}
        for row in fastavro.reader(stream):
            assert isinstance(row, dict)
            prev[int(row["partition"])] = str(row["hash"])
        # fastavro appends (reusing header and sync marker) to a readable stream not at 0
        stream.seek(resume_at)
        return cls(stream, path, prev)

    def write(self, items: Sequence[ReplayItem]) -> set[Position]:
        from sinks.audit.record import GENESIS, audit_record, chain
        from sinks.base import SinkEvent

        now = datetime.now(UTC)
        by_partition: dict[int, list[dict[str, Any]]] = {}
        for item in items:
            by_partition.setdefault(item.position[0], []).append(
                audit_record(SinkEvent(None, item.record), now)
            )
        for partition, records in by_partition.items():
            for linked in chain(records, self._prev_hashes.get(partition, GENESIS)):
                self._writer.write(linked)
                self._prev_hashes[partition] = linked["hash"]
        self._writer.flush()
        self._stream.flush()
        return set()

    def resume_marker(self) -> int | None:
        return self._stream.tell()

    def close(self) -> None:
        self._writer.flush()
        self._stream.close()
