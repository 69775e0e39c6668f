"""What the user asked to replay, parsed from the command line but not yet resolved.

Conventions, chosen so a range can be read aloud without surprises:
- `--from-offset` and `--to-offset` are inclusive: `--from-offset 100 --to-offset 199`
  replays offsets 100..199.
- `--from-time` and `--to-time` are half-open, like a time window: records with a
  timestamp >= from and < to, so adjacent windows never overlap.
- `--count N` bounds each partition (at most N records from each): a total across
  partitions would depend on how fetches interleave, and two replays of "the same
  range" would then differ.
- `[P:]O` names one partition (and implies it is the only one replayed, with the other
  `P:O` given); a bare `O` applies to every selected partition.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from replay.errors import ReplayUsageError

_OFFSET = re.compile(r"^(?:(\d+):)?(\d+)$")


@dataclass(frozen=True)
class OffsetBound:
    """An inclusive offset, for one partition (`partition` set) or for every partition."""

    offset: int
    partition: int | None = None

    def __str__(self) -> str:
        return f"{self.partition}:{self.offset}" if self.partition is not None else str(self.offset)


def parse_offset(text: str, option: str) -> OffsetBound:
    match = _OFFSET.match(text.strip())
    if not match:
        raise ReplayUsageError(
            f"{option} {text!r}: expected OFFSET or PARTITION:OFFSET (e.g. 1200 or 0:1200)"
        )
    partition, offset = match.groups()
    return OffsetBound(int(offset), None if partition is None else int(partition))


def parse_time(text: str, option: str) -> datetime:
    """ISO 8601; a time without a zone is UTC (an audit range must not depend on the host)."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ReplayUsageError(
            f"{option} {text!r}: expected an ISO 8601 time, e.g. 2026-11-22T20:00:00Z"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True)
class ReplaySpec:
    """A replay request: exactly one start, at most one kind of stop, optional filters."""

    topic: str
    from_offsets: tuple[OffsetBound, ...] = ()
    from_time: datetime | None = None
    from_beginning: bool = False
    to_offsets: tuple[OffsetBound, ...] = ()
    to_time: datetime | None = None
    count: int | None = None
    partitions: tuple[int, ...] = ()
    type_globs: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        starts = sum((bool(self.from_offsets), self.from_time is not None, self.from_beginning))
        if starts != 1:
            raise ReplayUsageError(
                "give exactly one of --from-offset, --from-time or --from-beginning"
            )
        if self.count is not None and self.count < 1:
            raise ReplayUsageError(f"--count {self.count}: must be at least 1")
        if self.from_time and self.to_time and self.to_time <= self.from_time:
            raise ReplayUsageError(
                f"--to-time {self.to_time.isoformat()} is not after "
                f"--from-time {self.from_time.isoformat()}"
            )
        for option, bounds in (
            ("--from-offset", self.from_offsets),
            ("--to-offset", self.to_offsets),
        ):
            seen: set[int | None] = set()
            for bound in bounds:
                if bound.partition in seen:
                    which = (
                        "all partitions"
                        if bound.partition is None
                        else f"partition {bound.partition}"
                    )
                    raise ReplayUsageError(f"{option} given twice for {which}")
                seen.add(bound.partition)

    def selected_partitions(self, available: list[int]) -> list[int]:
        """The partitions to replay: --partition, else those named by P:O, else all."""
        named = {b.partition for b in self.from_offsets if b.partition is not None}
        wanted = set(self.partitions) | named if (self.partitions or named) else set(available)
        missing = sorted(wanted - set(available))
        if missing:
            raise ReplayUsageError(
                f"topic {self.topic} has no partition {', '.join(map(str, missing))}; "
                f"it has partitions {_span(available)}"
            )
        return sorted(wanted)

    def from_offset_for(self, partition: int) -> int | None:
        return _bound_for(self.from_offsets, partition)

    def to_offset_for(self, partition: int) -> int | None:
        return _bound_for(self.to_offsets, partition)

    def matches_type(self, event_type: str) -> bool:
        if not self.type_globs:
            return True
        return any(fnmatch.fnmatchcase(event_type, glob) for glob in self.type_globs)


def _no_repeats(option: str, bounds: tuple[OffsetBound, ...]) -> None:
    seen: set[int | None] = set()
    for bound in bounds:
        if bound.partition in seen:
            which = "every partition" if bound.partition is None else f"partition {bound.partition}"
            raise ReplayUsageError(f"{option} given twice for {which}")
        seen.add(bound.partition)


def _bound_for(bounds: tuple[OffsetBound, ...], partition: int) -> int | None:
    general = None
    for bound in bounds:
        if bound.partition == partition:
            return bound.offset
        if bound.partition is None:
            general = bound.offset
    return general


def _span(values: list[int]) -> str:
    if not values:
        return "none"
    ordered = sorted(values)
    if ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"{ordered[0]}..{ordered[-1]}"
    return ", ".join(map(str, ordered))
