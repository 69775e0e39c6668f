"""Events as JSON lines: one structured-mode CloudEvent per line, with where it was read.

{"topic": ..., "partition": 0, "offset": 42, "timestamp": "2026-...Z",
 "key": "<vcenter uuid>/VirtualMachine:vm-42", "event": {<structured CloudEvent>}}
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from cloudevents.core.formats.json import JSONFormat

from replay.targets.base import Position, ReplayItem, ReplayTarget

_FORMAT = JSONFormat()


def as_json_line(item: ReplayItem) -> str:
    record = item.record
    where: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": None
        if record.timestamp_ms is None
        else datetime.fromtimestamp(record.timestamp_ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "key": None if record.key is None else record.key.decode("utf-8", errors="replace"),
    }
    # the SDK writes the structured form (attributes and data keep their encoding); it is
    # spliced in as it is rather than parsed and dumped again, which would double the cost
    head = json.dumps(where, separators=(",", ":"), ensure_ascii=False)
    return head[:-1] + ',"event":' + _FORMAT.write(item.event).decode() + "}"


class JsonLinesTarget(ReplayTarget):
    def __init__(self, stream: IO[str], name: str, owns_stream: bool) -> None:
        self.stream = stream
        self.name = name
        self._owns_stream = owns_stream

    @classmethod
    def stdout(cls) -> JsonLinesTarget:
        return cls(sys.stdout, "stdout", owns_stream=False)

    @classmethod
    def file(cls, path: Path, resume_at: int | None = None) -> JsonLinesTarget:
        """A new file, or with `resume_at` the file of an interrupted replay cut to the
        size it had when the replay last saved its position."""
        if resume_at is None:
            return cls(path.open("w", encoding="utf-8"), f"file:{path}", True)
        stream = path.open("r+", encoding="utf-8")
        stream.truncate(resume_at)
        stream.seek(resume_at)
        return cls(stream, f"file:{path}", True)

    def resume_marker(self) -> int | None:
        return self.stream.tell() if self._owns_stream else None

    def write(self, items: Sequence[ReplayItem]) -> set[Position]:
        self.stream.write("".join(as_json_line(item) + "\n" for item in items))
        self.stream.flush()
        return set()

    def close(self) -> None:
        if self._owns_stream:
            self.stream.close()
