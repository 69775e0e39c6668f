"""Built-in, off by default (`streams.duplicates`): an event whose id was already read
within a window is dropped, so replays and repeated writes stop at the worker.

Event ids are deterministic (vCenter + key + createdTime) and the record key follows the
event's entity, so every repeat of an event is in the partition of its first copy: the
table is co-partitioned, keyed by event id, and holds the offset of the record that
claimed the id. A record read again at the same offset (a restart or a rebalance before
its offset was committed) is that record, not a repeat, and goes on: the outputs it
makes may never have been written. A repeat is the same id at another offset.

Windows are tumbling, in record time; an id is looked for in the current window and the
one before, so a repeat within `window` of its first copy is always caught.
"""

from __future__ import annotations

from typing import Any

from cloudevents.core.v1.event import CloudEvent

from streams.api import Inline, inline
from streams.state import Table, current_record
from vcstream.settings.streams import DuplicatesSettings

NAME = "duplicates"


def duplicates(settings: DuplicatesSettings) -> Inline:
    """The processor for these settings (its window is part of its table)."""
    size = settings.window.total_seconds()
    # The current window and the one before are read. Faust's cleanup drops windows by
    # the wall clock, not by record time: two sizes keep one more, for a worker a window
    # behind (catching up), at the cost of memory (an id per event checked per window).
    seen = Table("duplicates-seen", help="Offset of the record that claimed an event id.")
    seen = seen.tumbling(size, expires=2 * size)

    @inline(name=NAME, types=settings.types, tables=[seen])
    def drop_duplicates(event: CloudEvent) -> CloudEvent | None:
        offset = current_record().offset
        claimed = claim(seen, event.get_id(), size)
        if claimed is None:
            seen[event.get_id()] = offset
            return event
        return event if claimed == offset else None

    return drop_duplicates


def claim(seen: Table, event_id: str, size: float) -> Any:
    """The offset that claimed this id in the current window or the one before, or None."""
    windows = seen[event_id]
    try:
        return windows.current()
    except KeyError:
        pass
    try:
        return windows.delta(size)
    except KeyError:
        return None
