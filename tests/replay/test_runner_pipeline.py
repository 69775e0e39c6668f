"""The replay loop's two stages (decode the next batch while the target writes the last):
counts and saved positions follow written batches only, and nothing is written after
a write failed."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import pytest

from replay.progress import LineProgress
from replay.runner import ReplayLoop
from replay.spec import ReplaySpec
from replay.tally import PartitionTally
from replay.targets.base import Position, ReplayItem, ReplayTarget
from schemas import KafkaRecord
from schemas.codec import encode_vsphere
from tests.replay.helpers import CLASSES, EPOCH, VCENTER, RecordMessage, event_data


def records(count: int) -> list[KafkaRecord]:
    made = []
    for offset in range(count):
        record = encode_vsphere(event_data(offset, EPOCH), CLASSES[offset % 3], VCENTER)
        made.append(replace(record, topic="t", partition=0, offset=offset, timestamp_ms=0))
    return made


class BatchesOf:
    """Stands in for RangeReader: fixed batches, no broker (the loop is under test)."""

    def __init__(self, batches: list[list[KafkaRecord]]) -> None:
        self._batches = batches
        self.finished = False
        self.committed: list[dict[int, int]] = []

    def message_batches(self) -> Iterator[list[RecordMessage]]:
        for batch in self._batches:
            yield [RecordMessage(record) for record in batch]
        self.finished = True

    def commit(self, next_offsets: dict[int, int]) -> None:
        self.committed.append(next_offsets)


class FailingOnBatch(ReplayTarget):
    def __init__(self, failing: int) -> None:
        self.failing = failing
        self.written: list[list[int]] = []

    def write(self, items: Sequence[ReplayItem]) -> set[Position]:
        if len(self.written) == self.failing:
            self.failing = -1
            raise OSError("disk full")
        self.written.append([item.position[1] for item in items])
        return set()

    def resume_marker(self) -> int | None:
        return len(self.written)


def run_loop(
    reader: BatchesOf, target: ReplayTarget, tally: PartitionTally, saved: list[Any]
) -> None:
    loop = ReplayLoop(
        ReplaySpec("t", from_beginning=True),
        reader,  # type: ignore[arg-type]
        target,
        {0: tally},
        LineProgress(40, 0, "test", io.StringIO()),
        threading.Event(),
        after_batch=lambda marker: saved.append((marker, tally.next_offset)),
    )
    loop.run()


def test_replay_stops_at_a_failed_write_and_writes_nothing_after_it() -> None:
    all_records = records(40)
    reader = BatchesOf([all_records[i : i + 10] for i in range(0, 40, 10)])
    target = FailingOnBatch(failing=1)

    tally = PartitionTally(0, 0)
    saved: list[Any] = []
    with pytest.raises(OSError, match="disk full"):
        run_loop(reader, target, tally, saved)

    # batch 0 written; batch 1 failed; batches 2 and 3 never reached the target
    assert target.written == [list(range(10))]
    assert reader.committed == [{0: 10}]
    assert saved == [(1, 10)] and (tally.read, tally.next_offset) == (10, 10)


def test_counts_and_saved_positions_follow_written_batches() -> None:
    all_records = records(30)
    reader = BatchesOf([all_records[i : i + 10] for i in range(0, 30, 10)])
    target = FailingOnBatch(failing=-1)

    tally = PartitionTally(0, 0)
    saved: list[Any] = []
    run_loop(reader, target, tally, saved)

    assert (tally.read, tally.written, tally.next_offset) == (30, 30, 30)
    # each save carries the target's marker as it was right after that batch
    assert saved == [(1, 10), (2, 20), (3, 30)]
    assert target.written == [list(range(0, 10)), list(range(10, 20)), list(range(20, 30))]
