"""Which events read from a collector are new, and which expected events are gone.

A position is an event's (key, createdTime). Keys alone cannot order events: they are
32-bit on a real vCenter and wrap to negative values, and a restarted vcsim counts from
1 again. So a resumed collector starts at the checkpoint's createdTime, and the events
it returns (oldest first) are skipped up to and including the checkpoint's own event.
Events sharing the checkpoint's createdTime but seen before it were written already.

A vCenter can also return an event twice (vcsim does when a collector's page is
refilled while an event is being posted, and any collector does after a rewind). While
streaming, an event is new when its key follows the last one in 32-bit order (across
a wrap too); a key that does not follow is a restart of the key sequence only if the
event is also newer than the last one written, and otherwise a repeat, which is
skipped and counted.

If the checkpoint's event is no longer in the vCenter's history, events may have been
lost: that is reported (log and metric), never passed over silently.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Position:
    key: int
    time: datetime  # UTC, microsecond precision (what the checkpoint can hold)

    @classmethod
    def boundary(cls, time: datetime) -> Position:
        """A first start's position: no event yet, everything from `time` on is new."""
        return cls(BOUNDARY_KEY, as_utc_micros(time))

    @property
    def is_boundary(self) -> bool:
        return self.key == BOUNDARY_KEY


# vCenter's event keys are 32-bit signed integers that wrap, to negative values too
KEY_MODULUS = 2**32
# outside the 32-bit range, so no event has it: a checkpoint with it marks a start time only
BOUNDARY_KEY = -(2**31) - 1
# what marked a start time before keys were known to wrap to negative values; read as
# a boundary still. A real event at key -1 read back as one costs at most a rewrite of
# the events sharing its createdTime (duplicates downstream can detect, never a loss).
LEGACY_BOUNDARY_KEY = -1


def key_distance(earlier: int, later: int) -> int:
    """How many keys `later` comes after `earlier` in 32-bit wrapping order (< 0: before)."""
    distance = (later - earlier) % KEY_MODULUS
    return distance - KEY_MODULUS if distance >= KEY_MODULUS // 2 else distance


def position_of(event: Any) -> Position:
    return Position(int(event.key), as_utc_micros(event.createdTime))


def as_utc_micros(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


class GapReason(StrEnum):
    # the checkpoint's own event is gone: events after it may have been pruned unread
    CHECKPOINT_GONE = "checkpoint_gone"
    # keys jumped forward: the events in between were never returned
    KEY_GAP = "key_gap"
    # the collector stopped returning events that the vCenter reports having
    COLLECTOR_LOST = "collector_lost"


@dataclass(frozen=True, slots=True)
class Gap:
    reason: GapReason
    missed: int  # events known missing (0 when unknown)
    detail: str


class Sequencer:
    """Filters a collector's events down to the new ones, in order, and notices gaps."""

    def __init__(self, after: Position) -> None:
        self._resume_from: Position | None = None if after.is_boundary else after
        self._not_before = after.time if after.is_boundary else None
        self._last = after
        # events with the checkpoint's createdTime, seen before the checkpoint's event
        self._held: list[Any] = []
        self.repeated = 0  # events skipped because they were written already

    @property
    def last(self) -> Position:
        return self._last

    def accept(self, events: Iterable[Any]) -> tuple[list[Any], list[Gap]]:
        fresh: list[Any] = []
        gaps: list[Gap] = []
        repeats: list[int] = []
        for event in events:
            position = position_of(event)
            if self._not_before is not None and position.time < self._not_before:
                continue
            if self._resume_from is not None and not self._resuming(event, position, fresh, gaps):
                continue
            if self._is_repeat(position):
                repeats.append(position.key)
                continue
            gap = self._continuity(position)
            if gap is not None:
                gaps.append(gap)
            fresh.append(event)
            self._last = position
        if repeats:
            self.repeated += len(repeats)
            log.warning(
                "%d event(s) returned again were skipped (keys %d to %d, written already)",
                len(repeats),
                repeats[0],
                repeats[-1],
            )
        return fresh, gaps

    def _resuming(self, event: Any, position: Position, fresh: list[Any], gaps: list[Gap]) -> bool:
        """Still looking for the checkpoint's event: True when `event` is new."""
        after = self._resume_from
        assert after is not None
        if position.time < after.time:
            return False
        if position.time == after.time:
            if position.key == after.key:
                self._resume_from = None
                self._held.clear()
            else:
                self._held.append(event)
            return False
        # past the checkpoint's time without meeting its event: it was pruned
        self._resume_from = None
        gaps.append(
            Gap(
                GapReason.CHECKPOINT_GONE,
                0,
                f"the checkpoint's event (key {after.key}, {after.time.isoformat()}) is no "
                "longer in the vCenter's event history; events after it may be lost",
            )
        )
        # the held events may follow the lost one: a duplicate (same id, detectable
        # downstream) is better than a loss
        for held in self._held:
            fresh.append(held)
            self._last = position_of(held)
        self._held.clear()
        return True

    def _is_repeat(self, position: Position) -> bool:
        """Not after the last event written, by key nor by time: written already."""
        last = self._last
        if last.is_boundary:
            return False
        return key_distance(last.key, position.key) <= 0 and position.time <= last.time

    def _continuity(self, position: Position) -> Gap | None:
        last = self._last
        if last.is_boundary:
            return None
        distance = key_distance(last.key, position.key)
        if distance == 1:
            return None
        if distance > 1:
            missed = distance - 1
            return Gap(
                GapReason.KEY_GAP,
                missed,
                f"event keys jumped from {last.key} to {position.key}: "
                f"{missed} event(s) missing from the vCenter's history",
            )
        # keys went backwards on a newer event: the vCenter started counting again
        log.warning(
            "event keys restarted (%d after %d): the vCenter's key sequence was reset",
            position.key,
            last.key,
        )
        return None
