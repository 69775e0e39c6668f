"""Which events read from a collector are new, and which expected events are gone.

A position is an event's (key, createdTime). Keys alone cannot order events: they are
32-bit on a real vCenter and wrap, and a restarted vcsim counts from 1 again. So a
resumed collector starts at the checkpoint's createdTime, and the events it returns
(oldest first) are skipped up to and including the checkpoint's own event. Events
sharing the checkpoint's createdTime but seen before it were written already.

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


# event keys are never negative; a checkpoint with this key marks a start time only
BOUNDARY_KEY = -1


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

    @property
    def last(self) -> Position:
        return self._last

    def accept(self, events: Iterable[Any]) -> tuple[list[Any], list[Gap]]:
        fresh: list[Any] = []
        gaps: list[Gap] = []
        for event in events:
            position = position_of(event)
            if self._not_before is not None and position.time < self._not_before:
                continue
            if self._resume_from is not None and not self._resuming(event, position, fresh, gaps):
                continue
            gap = self._continuity(position)
            if gap is not None:
                gaps.append(gap)
            fresh.append(event)
            self._last = position
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

    def _continuity(self, position: Position) -> Gap | None:
        last = self._last
        if last.is_boundary or position.key == last.key + 1:
            return None
        if position.key > last.key + 1:
            missed = position.key - last.key - 1
            return Gap(
                GapReason.KEY_GAP,
                missed,
                f"event keys jumped from {last.key} to {position.key}: "
                f"{missed} event(s) missing from the vCenter's history",
            )
        # keys went backwards: wrapped (32-bit) or the vCenter started counting again
        log.warning(
            "event keys restarted (%d after %d): vCenter restarted or keys wrapped",
            position.key,
            last.key,
        )
        return None
