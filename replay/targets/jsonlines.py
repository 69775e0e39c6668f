"""Events as JSON lines: one structured-mode CloudEvent per line, with where it was read.

{"topic": ..., "partition": 0, "offset": 42, "timestamp": "2026-...Z",
 "key": "<vcenter uuid>/VirtualMachine:vm-42", "event": {<structured CloudEvent>}}

The event is written from the record's bytes (the CloudEvents structured mode of
`schemas.cloudevent`): attributes as the headers spell them and `data` exactly the
record's value, so a line holds what Kafka held. Lines are bytes end to end: nothing
here goes through the SDK or stdlib json.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from replay.targets.base import Position, ReplayItem, ReplayTarget


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return f"{iso_second(ms // 1000)}.{ms % 1000:03d}Z"


@functools.lru_cache(maxsize=1024)
def iso_second(seconds: int) -> str:
    # records come in bursts within a second: a datetime per record was a fifth of a line
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def as_json_line(item: ReplayItem) -> bytes:
    record = item.record
    where: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": _iso(record.timestamp_ms),
        "key": None if record.key is None else record.key.decode("utf-8", errors="replace"),
    }
    _, event = item.view.http_structured()
    return orjson.dumps(where)[:-1] + b',"event":' + event + b"}\n"


# iovecs one writev takes at most (Linux: 1024; POSIX guarantees 16)
IOV_MAX = os.sysconf("SC_IOV_MAX") if "SC_IOV_MAX" in os.sysconf_names else 16


def write_all(fd: int, pieces: Sequence[bytes]) -> None:
    """`pieces` written to `fd` one after another, as they are: no joined copy of them
    (os.writev, IOV_MAX at a time). A short write (a signal, a pipe) continues where it
    stopped; an error (a full disk) is raised with the file as far as it got."""
    start = 0
    while start < len(pieces):
        run = pieces[start : start + IOV_MAX]
        written = os.writev(fd, run)
        if written == sum(map(len, run)):
            start += len(run)
            continue
        for piece in run:  # short: finish the piece it stopped in, go on after it
            start += 1
            if written < len(piece):
                rest = memoryview(piece)[written:]
                while rest:
                    rest = rest[os.write(fd, rest) :]
                break
            written -= len(piece)


class JsonLinesTarget(ReplayTarget):
    def __init__(self, stream: IO[bytes], name: str, owns_stream: bool) -> None:
        self.stream = stream
        self.name = name
        self._owns_stream = owns_stream

    @classmethod
    def stdout(cls) -> JsonLinesTarget:
        return cls(sys.stdout.buffer, "stdout", owns_stream=False)

    @classmethod
    def file(cls, path: Path, resume_at: int | None = None) -> JsonLinesTarget:
        """A new file, or with `resume_at` the file of an interrupted replay cut to the
        size it had when the replay last saved its position. Unbuffered: a batch goes
        to the file in one `write_all`, whose pieces no buffer needs to copy."""
        if resume_at is None:
            return cls(path.open("wb", buffering=0), f"file:{path}", True)
        stream = path.open("r+b", buffering=0)
        stream.truncate(resume_at)
        stream.seek(resume_at)
        return cls(stream, f"file:{path}", True)

    def resume_marker(self) -> int | None:
        return self.stream.tell() if self._owns_stream else None

    takes_lines = True

    def write(self, items: Sequence[ReplayItem]) -> set[Position]:
        self.write_lines([as_json_line(item) for item in items])
        return set()

    def write_lines(self, pieces: Sequence[bytes]) -> None:
        if self._owns_stream:
            write_all(self.stream.fileno(), pieces)
        else:  # a stream of someone else's (stdout): through its buffer
            self.stream.write(b"".join(pieces))
            self.stream.flush()

    def close(self) -> None:
        if self._owns_stream:
            self.stream.close()
