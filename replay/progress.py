"""Progress on stderr: a rich bar (rate, ETA) on a terminal (`replay.progress_bar`),
plain lines otherwise.

stdout is left alone: it may be the replay's target. rich is imported only for a
terminal: ~50 ms of every replay's start-up (and of each spawned worker's) otherwise.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Protocol


class Progress(Protocol):
    def advance(self, records: int) -> None: ...

    def complete(self) -> None:
        """The whole range was read: the total counts offsets, transaction markers among
        them, which are never read as records, so only the end shows 100%."""

    def close(self) -> None: ...


class LineProgress:
    """A line every `interval` seconds: for logs, CI and pipes, where a bar is noise."""

    def __init__(
        self, total: int, done: int, description: str, stream: IO[str], interval: float = 5.0
    ) -> None:
        self.total = total
        self.done = done
        self.description = description
        self.stream = stream
        self.interval = interval
        self._began = time.monotonic()
        self._counted = 0
        self._last = self._began

    def advance(self, records: int) -> None:
        self.done += records
        self._counted += records
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._line(now)

    def complete(self) -> None:
        self.done = max(self.done, self.total)

    def _line(self, now: float) -> None:
        elapsed = max(now - self._began, 1e-9)
        rate = self._counted / elapsed
        left = max(self.total - self.done, 0)
        eta = f"{left / rate:.0f}s" if rate > 0 else "?"
        percent = 100.0 * self.done / self.total if self.total else 100.0
        print(
            f"{self.description}: {self.done}/{self.total} records ({percent:.1f}%), "
            f"{rate:,.0f} rec/s, ETA {eta}",
            file=self.stream,
            flush=True,
        )

    def close(self) -> None:
        self._line(time.monotonic())


def progress_for(
    total: int, done: int, description: str, stream: IO[str] | None = None
) -> Progress:
    out = stream or sys.stderr
    if out.isatty():
        from replay.progress_bar import BarProgress

        return BarProgress(total, done, description, out)
    return LineProgress(total, done, description, out)
