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
from typing import Any

import fastavro

from replay.targets.base import Position, ReplayItem, ReplayTarget
from sinks.audit.encoding import ContainerWriter

CODEC = "deflate"


class AvroFileTarget(ReplayTarget):
    def __init__(self, writer: ContainerWriter, path: Path, prev_hashes: dict[int, str]) -> None:
        self.name = f"file:{path}"
        self._stream = writer.stream
        self._prev_hashes = prev_hashes
        self._writer = writer

    @classmethod
    def open(cls, path: Path, resume_at: int | None = None) -> AvroFileTarget:
        if resume_at is None or resume_at == 0:
            return cls(ContainerWriter(path.open("w+b"), CODEC), path, {})
        stream = path.open("r+b")
        stream.truncate(resume_at)
        stream.seek(0)
        # the chain continues from the last record of each partition already in the file
        prev: dict[int, str] = {}
        for row in fastavro.reader(stream):
            assert isinstance(row, dict)
            prev[int(row["partition"])] = str(row["hash"])
        # new blocks go after the last whole one, with the header's codec and sync marker
        return cls(ContainerWriter.resume(stream), path, prev)

    def write(self, items: Sequence[ReplayItem]) -> set[Position]:
        from sinks.audit.record import GENESIS, audit_record, chain_encoded
        from sinks.base import SinkEvent

        now = datetime.now(UTC)
        by_partition: dict[int, list[dict[str, Any]]] = {}
        for item in items:
            event = SinkEvent(None, item.record)
            event.view = item.view  # its attributes, read once by the replay, not again
            by_partition.setdefault(item.position[0], []).append(audit_record(event, now))
        for partition, records in by_partition.items():
            for linked, encoded in chain_encoded(
                records, self._prev_hashes.get(partition, GENESIS)
            ):
                self._writer.add(encoded)
                self._prev_hashes[partition] = linked["hash"]
        self._writer.flush()
        self._stream.flush()
        return set()

    def resume_marker(self) -> int | None:
        return self._stream.tell()

    def close(self) -> None:
        self._writer.flush()
        self._stream.close()
