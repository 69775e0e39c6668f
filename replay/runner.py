"""The replay loop: read a batch, check, filter, write, count, save the position.

Checking and counting a batch is `replay.batch` (one pass over its messages).

A batch is counted only after the target accepted it, and the resume state is taken
right after (`after_batch`, which writes it at most every so often), so what the state
says was written is what the target has.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from replay.batch import BatchChecker, Checked
from replay.progress import Progress
from replay.reader import RangeReader
from replay.spec import ReplaySpec
from replay.tally import PartitionTally
from replay.targets.base import Position, ReplayTarget

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Written:
    rejected: set[Position]
    marker: int | None  # the target's resume marker right after the batch
    durable: bool  # everything written so far is durable (`ReplayTarget.sync`)


@dataclass(frozen=True)
class _InFlight:
    """A batch handed to the writer thread, not yet counted."""

    checked: Checked
    written: Future[_Written]


class ReplayLoop:
    def __init__(
        self,
        spec: ReplaySpec,
        reader: RangeReader,
        target: ReplayTarget,
        tallies: dict[int, PartitionTally],
        progress: Progress,
        stop: threading.Event,
        rate: float | None = None,
        after_batch: Callable[[int | None], None] = lambda marker: None,
    ) -> None:
        self.spec = spec
        self.reader = reader
        self.target = target
        self.tallies = tallies
        self.progress = progress
        self.stop = stop
        self.rate = rate
        self.after_batch = after_batch
        # next offsets counted but not yet durable at the target: committed (--group)
        # and saved together at the target's next durable point
        self._unsaved: dict[int, int] = {}
        self._saved = True

    def run(self) -> bool:
        """True when the whole range was replayed, False when stopped early.

        Two stages overlap: while the target writes batch N (in a worker thread: file
        I/O, a database, HTTP), the next batch is read and checked. Writes stay strictly
        one after another and the next is submitted only once the previous succeeded, so
        a failed write is never followed by a later one (audit storage skips offsets
        below the newest it holds: a gap would never be filled on --resume).
        """
        began = time.monotonic()
        replayed = 0
        in_flight: _InFlight | None = None
        checker = BatchChecker(self.spec.topic, self._wanted, lines=self.target.takes_lines)
        with ThreadPoolExecutor(1, thread_name_prefix="replay-write") as writer:
            try:
                for batch in self.reader.message_batches():
                    checked = checker.check(batch)
                    if in_flight is not None:
                        self._account(in_flight)
                        in_flight = None
                    in_flight = _InFlight(checked, writer.submit(self._write, checked))
                    replayed += len(batch)
                    if self.rate:
                        # hold back so the next batch starts no earlier than the rate allows
                        ahead = replayed / self.rate - (time.monotonic() - began)
                        if ahead > 0:
                            self.stop.wait(ahead)
                    if self.stop.is_set():
                        break
                if in_flight is not None:
                    self._account(in_flight)
                    in_flight = None
                if not self._saved:  # a target that syncs at checkpoints: one now
                    durable = writer.submit(self.target.sync, True).result()
                    self._checkpoint(durable, self.target.resume_marker())
            finally:
                if in_flight is not None:  # reading failed: keep what was written
                    self._account_if_written(in_flight)
        return self.reader.finished if self.stop.is_set() else True

    def _wanted(self, event_type: str) -> bool:
        return self.spec.matches_type(event_type) and self.target.accepts(event_type)

    def _write(self, checked: Checked) -> _Written:
        """In the writer thread: the batch, the target's sync, then its resume marker
        right after it (taken here, since the next write may move it before the loop
        saves)."""
        rejected: set[Position] = set()
        if self.target.takes_lines:
            if checked.pieces:
                self.target.write_lines(checked.pieces)
        elif checked.items:
            rejected = self.target.write(checked.items)
        durable = self.target.sync()
        return _Written(rejected, self.target.resume_marker(), durable)

    def _account_if_written(self, in_flight: _InFlight) -> None:
        try:
            self._account(in_flight)
        except Exception:
            log.exception("the last batch was not written; --resume sends it again")

    def _account(self, in_flight: _InFlight) -> None:
        """Count a written batch; once the target says it is durable, commit it under
        --group and save the position."""
        written = in_flight.written.result()
        checked = in_flight.checked
        if written.rejected:
            checked.dead_lettered(written.rejected)
        touched = self._unsaved
        for partition, counted in checked.counted.items():
            for offset, problem in counted.undecodable:
                log.warning(
                    "undecodable record %s[%d]@%d: %s", self.spec.topic, partition, offset, problem
                )
            tally = self.tallies[partition]
            tally.add(counted)
            touched[partition] = tally.next_offset
        self._saved = False
        self._checkpoint(written.durable, written.marker)
        self.progress.advance(checked.read)

    def _checkpoint(self, durable: bool, marker: int | None) -> None:
        if not durable:
            return
        self.reader.commit(self._unsaved)
        self.after_batch(marker)
        self._unsaved = {}
        self._saved = True
