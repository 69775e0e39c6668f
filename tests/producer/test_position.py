"""Which events are new after a checkpoint, and which gaps are reported (no services)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from producer.checkpoint import Checkpoint
from producer.position import (
    BOUNDARY_KEY,
    LEGACY_BOUNDARY_KEY,
    GapReason,
    Position,
    Sequencer,
)

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


def test_keys_that_restart_on_newer_events_are_not_taken_for_old_events() -> None:
    # a restarted vcsim counts from 1 again: its events are newer, so still new
    sequencer = Sequencer(Position(2_147_483_000, T0))
    fresh, gaps = sequencer.accept(events((2_147_483_000, 0), (1, 5), (2, 6)))
    assert keys(fresh) == [1, 2]
    assert gaps == []


def test_first_start_boundary_takes_everything_from_its_time_on() -> None:
    sequencer = Sequencer(Position.boundary(T0 + timedelta(seconds=2)))
    fresh, gaps = sequencer.accept(events((5, 1), (6, 2), (9, 3)))
    assert keys(fresh) == [6, 9]  # no gap reported before the first event: 7, 8 reported
    assert [(gap.reason, gap.missed) for gap in gaps] == [(GapReason.KEY_GAP, 2)]


def test_an_event_returned_twice_is_written_once() -> None:
    # vcsim's race: the same event (same key and createdTime) twice in a row
    sequencer = Sequencer(Position(1612, T0))
    fresh, gaps = sequencer.accept(events((1612, 0), (1613, 1), (1613, 1), (1614, 2)))
    assert keys(fresh) == [1613, 1614]
    assert gaps == []
    assert sequencer.repeated == 1
    assert sequencer.last == Position(1614, T0 + timedelta(seconds=2))


def test_events_returned_again_after_later_ones_are_skipped_without_a_gap() -> None:
    # a rewound collector returns everything again, in a later page
    sequencer = Sequencer(Position(1, T0))
    assert keys(sequencer.accept(events((2, 1), (3, 2)))[0]) == [2, 3]
    fresh, gaps = sequencer.accept(events((1, 0), (2, 1), (3, 2), (4, 3)))
    assert keys(fresh) == [4]
    assert gaps == []
    assert sequencer.repeated == 3


def test_keys_wrapping_past_2_to_the_31_to_negative_values_continue_the_sequence() -> None:
    top = 2**31 - 1
    sequencer = Sequencer(Position(top - 1, T0))
    page = events((top - 1, 0), (top, 1), (-(2**31), 1), (-(2**31) + 1, 2))
    fresh, gaps = sequencer.accept(page)
    assert keys(fresh) == [top, -(2**31), -(2**31) + 1]
    assert gaps == []
    assert sequencer.repeated == 0
    # and a repeat across the wrap is still a repeat
    fresh, _ = sequencer.accept(events((top, 1), (-(2**31) + 2, 3)))
    assert keys(fresh) == [-(2**31) + 2]
    assert sequencer.repeated == 1


def test_a_gap_across_the_wrap_counts_the_keys_in_between() -> None:
    top = 2**31 - 1
    sequencer = Sequencer(Position(top - 2, T0))
    fresh, gaps = sequencer.accept(events((top - 2, 0), (-(2**31) + 2, 1)))
    assert keys(fresh) == [-(2**31) + 2]
    assert [(gap.reason, gap.missed) for gap in gaps] == [(GapReason.KEY_GAP, 4)]


def test_negative_keys_resume_from_a_checkpoint_like_positive_ones() -> None:
    sequencer = Sequencer(Position(-5, T0))
    fresh, gaps = sequencer.accept(events((-6, 0), (-5, 0), (-4, 1), (-1, 2), (0, 3)))
    assert keys(fresh) == [-4, -1, 0]
    assert [(gap.reason, gap.missed) for gap in gaps] == [(GapReason.KEY_GAP, 2)]
    assert not Position(-1, T0).is_boundary


def test_a_restart_to_a_key_equal_to_the_last_one_is_new_when_the_event_is_newer() -> None:
    sequencer = Sequencer(Position(3, T0))
    fresh, _ = sequencer.accept(events((3, 10), (4, 11)))
    assert keys(fresh) == [3, 4]
    assert sequencer.repeated == 0


def test_checkpoints_keep_negative_keys_and_read_the_old_boundary_as_a_boundary() -> None:
    def stored(key: int) -> Position:
        checkpoint = Checkpoint("uuid", "https://vc/sdk", Position(key, T0), T0)
        return Checkpoint.decode(checkpoint.encode()).position

    assert stored(-(2**31)) == Position(-(2**31), T0)
    assert stored(-2) == Position(-2, T0)
    assert stored(BOUNDARY_KEY).is_boundary
    assert stored(LEGACY_BOUNDARY_KEY).is_boundary  # written before keys could be negative
