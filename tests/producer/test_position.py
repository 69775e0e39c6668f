"""Which events are new after a checkpoint, and which gaps are reported (no services)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from producer.position import GapReason, Position, Sequencer

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@dataclass
class FakeEvent:
    key: int
    createdTime: datetime


def events(*spec: tuple[int, float]) -> list[FakeEvent]:
    return [FakeEvent(key, T0 + timedelta(seconds=offset)) for key, offset in spec]


def keys(found: list[FakeEvent]) -> list[int]:
    return [event.key for event in found]


def test_resume_skips_up_to_and_including_the_checkpoint_event() -> None:
    sequencer = Sequencer(Position(11, T0 + timedelta(seconds=1)))
    fresh, gaps = sequencer.accept(events((10, 0.5), (11, 1), (12, 2), (13, 3)))
    assert keys(fresh) == [12, 13]
    assert gaps == []
    assert sequencer.last == Position(13, T0 + timedelta(seconds=3))


def test_events_sharing_the_checkpoint_time_before_it_are_not_written_again() -> None:
    sequencer = Sequencer(Position(11, T0))
    fresh, gaps = sequencer.accept(events((10, 0), (11, 0), (12, 0), (13, 1)))
    assert keys(fresh) == [12, 13]
    assert gaps == []


def test_resume_across_pages_keeps_looking_for_the_checkpoint_event() -> None:
    sequencer = Sequencer(Position(11, T0))
    assert sequencer.accept(events((10, 0))) == ([], [])
    fresh, _ = sequencer.accept(events((11, 0), (12, 1)))
    assert keys(fresh) == [12]


def test_checkpoint_event_pruned_from_history_is_reported_not_skipped_silently() -> None:
    sequencer = Sequencer(Position(11, T0))
    fresh, gaps = sequencer.accept(events((40, 5), (41, 6)))
    assert keys(fresh) == [40, 41]
    reasons = [gap.reason for gap in gaps]
    assert reasons == [GapReason.CHECKPOINT_GONE, GapReason.KEY_GAP]
    assert gaps[1].missed == 28  # keys 12..39


def test_held_events_are_written_when_the_checkpoint_event_is_gone() -> None:
    # same createdTime as the checkpoint but a different key: written rather than lost
    sequencer = Sequencer(Position(11, T0))
    fresh, gaps = sequencer.accept(events((12, 0), (13, 1)))
    assert keys(fresh) == [12, 13]
    assert GapReason.CHECKPOINT_GONE in [gap.reason for gap in gaps]


def test_key_gap_while_streaming_counts_the_missing_events() -> None:
    sequencer = Sequencer(Position(1, T0))
    fresh, gaps = sequencer.accept(events((1, 0), (2, 1), (3, 2), (7, 3)))
    assert keys(fresh) == [2, 3, 7]
    assert [(gap.reason, gap.missed) for gap in gaps] == [(GapReason.KEY_GAP, 3)]


def test_keys_that_restart_or_wrap_are_not_taken_for_old_events() -> None:
    # a restarted vCenter (or a wrapped 32-bit key) counts from 1 again: still new
    sequencer = Sequencer(Position(2_147_483_000, T0))
    fresh, gaps = sequencer.accept(events((2_147_483_000, 0), (1, 5), (2, 6)))
    assert keys(fresh) == [1, 2]
    assert gaps == []


def test_first_start_boundary_takes_everything_from_its_time_on() -> None:
    sequencer = Sequencer(Position.boundary(T0 + timedelta(seconds=2)))
    fresh, gaps = sequencer.accept(events((5, 1), (6, 2), (9, 3)))
    assert keys(fresh) == [6, 9]  # no gap reported before the first event: 7, 8 reported
    assert [(gap.reason, gap.missed) for gap in gaps] == [(GapReason.KEY_GAP, 2)]
