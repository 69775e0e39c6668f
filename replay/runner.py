"""The replay loop: read a batch, decode, filter, write, count, save the position.

A batch is counted only after the target accepted it, and the resume state is saved
right after, so what the state says was written is what the target has.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from replay.progress import Progress
from replay.reader import RangeReader
from replay.spec import ReplaySpec
from replay.tally import PartitionTally
from replay.targets.base import ReplayItem, ReplayTarget
from schemas import InvalidRecord, KafkaRecord, decode

log = logging.getLogger(__name__)


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
        after_batch: Callable[[], None] = lambda: None,
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
        """True when the whole range was replayed, False when stopped early."""
        began = time.monotonic()
        replayed = 0
        for batch in self.reader.batches():
            self._replay_batch(batch)
            replayed += len(batch)
            self.progress.advance(len(batch))
            if self.rate:
                # hold back so the next batch starts no earlier than the rate allows
                ahead = replayed / self.rate - (time.monotonic() - began)
                if ahead > 0:
                    self.stop.wait(ahead)
            if self.stop.is_set():
                return self.reader.finished
        return True

    def _replay_batch(self, batch: list[KafkaRecord]) -> None:
        classified = [self._classify(record) for record in batch]
        items = [c.item for c in classified if c.item is not None]
        rejected = self.target.write(items) if items else set()
        touched: dict[int, int] = {}
        for entry in classified:
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
                tally.wrote(record.offset, str(entry.item.event.get_id()))
            tally.next_offset = record.offset + 1
            touched[record.partition] = tally.next_offset
        self.reader.commit(touched)
        self.after_batch()

    def _classify(self, record: KafkaRecord) -> _Classified:
        try:
            event = decode(record)
        except InvalidRecord as exc:
            return _Classified(record, problem=str(exc))
        event_type = str(event.get_type())
        if not (self.spec.matches_type(event_type) and self.target.accepts(event_type)):
            return _Classified(record)
        return _Classified(record, item=ReplayItem(event, record))
