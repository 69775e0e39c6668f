"""The replay loop: read a batch, check, filter, write, count, save the position.

A batch is counted only after the target accepted it, and the resume state is saved
right after, so what the state says was written is what the target has.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from replay.progress import Progress
from replay.reader import RangeReader
from replay.spec import ReplaySpec
from replay.tally import PartitionTally
from replay.targets.base import Position, ReplayItem, ReplayTarget
from schemas import InvalidRecord, KafkaRecord
from schemas.cloudevent import CloudEventView

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _InFlight:
    """A batch handed to the writer thread, not yet counted."""

    classified: list[_Classified]
    written: Future[tuple[set[Position], int | None]]


@dataclass(frozen=True)
class _Classified:
    record: KafkaRecord
    item: ReplayItem | None = None  # to write
    problem: str | None = None  # undecodable: why
    # neither: filtered out by type


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
        with ThreadPoolExecutor(1, thread_name_prefix="replay-write") as writer:
            try:
                for batch in self.reader.batches():
                    classified = [self._classify(record) for record in batch]
                    if in_flight is not None:
                        self._account(in_flight)
                        in_flight = None
                    items = [c.item for c in classified if c.item is not None]
                    in_flight = _InFlight(classified, writer.submit(self._write, items))
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
            finally:
                if in_flight is not None:  # reading failed: keep what was written
                    self._account_if_written(in_flight)
        return self.reader.finished if self.stop.is_set() else True

    def _write(self, items: list[ReplayItem]) -> tuple[set[Position], int | None]:
        """In the writer thread: the batch, then the target's resume marker right after
        it (taken here, since the next write may move it before the loop saves)."""
        rejected = self.target.write(items) if items else set()
        return rejected, self.target.resume_marker()

    def _account_if_written(self, in_flight: _InFlight) -> None:
        try:
            self._account(in_flight)
        except Exception:
            log.exception("the last batch was not written; --resume sends it again")

    def _account(self, in_flight: _InFlight) -> None:
        """Count a written batch, commit it under --group, save the position."""
        rejected, marker = in_flight.written.result()
        touched: dict[int, int] = {}
        for entry in in_flight.classified:
            record = entry.record
            assert record.partition is not None and record.offset is not None
            tally = self.tallies[record.partition]
            tally.saw(record.offset, record.timestamp_ms)
            if entry.problem is not None:
                log.warning(
                    "undecodable record %s[%d]@%d: %s",
                    record.topic,
                    record.partition,
                    record.offset,
                    entry.problem,
                )
                tally.skip(record.offset, entry.problem)
            elif entry.item is None:
                tally.filter_out()
            elif entry.item.position in rejected:
                tally.dead_letter()
            else:
                tally.wrote(record.offset, entry.item.view.id)
            tally.next_offset = record.offset + 1
            touched[record.partition] = tally.next_offset
        self.reader.commit(touched)
        self.after_batch(marker)
        self.progress.advance(len(in_flight.classified))

    def _classify(self, record: KafkaRecord) -> _Classified:
        # checked as `schemas.decode` would (the SDK's object is the largest cost of a
        # replay), and written as its bytes
        view = CloudEventView(record)
        try:
            view.check()
        except InvalidRecord as exc:
            return _Classified(record, problem=str(exc))
        event_type = view.type
        if not (self.spec.matches_type(event_type) and self.target.accepts(event_type)):
            return _Classified(record)
        return _Classified(record, item=ReplayItem(view))
