"""The interface every replay target implements."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from schemas import KafkaRecord
from schemas.cloudevent import CloudEventView
from schemas.record import ConsumedRecord, Message

if TYPE_CHECKING:
    from replay.batch import Layout

# (partition, offset) of a record
Position = tuple[int, int]
UNREAD: Any = object()  # ReplayItem.data when the value was not parsed


class ReplayItem:
    """A checked event as the record's bytes hold it (topic, partition, offset set).

    Targets read the view's attributes and the record's bytes; a target that needs the
    SDK's object decodes it itself (`sinks.base.SinkEvent` does, on first use). The view
    reads the consumer's message in place (`schemas.record.ConsumedRecord`).

    A record of a known layout (`replay.batch`) comes as `read(...)`: with what the
    replay's check already read of it, so a target reads nothing twice: the message,
    its `layout` (shared by every record whose headers differ from it only in `ce_id`
    and `ce_time`), the id and time as text, `time` (`ce_time` parsed) and `data` (the
    value parsed); `attributes` are then the layout's with that id and time, as
    `view.attributes` reads them. None (data: `UNREAD`) when not read.
    """

    # a plain class: a frozen dataclass's __init__ was 4% of a replay into audit files
    __slots__ = ("_view", "data", "id", "layout", "message", "time", "time_text")

    def __init__(self, view: CloudEventView) -> None:
        self._view: CloudEventView | None = view
        self.message: Message | None = None
        self.layout: Layout | None = None
        self.id: str | None = None
        self.time_text: str | None = None
        self.time: datetime | None = None
        self.data: Any = UNREAD

    @classmethod
    def read(
        cls,
        message: Message,
        layout: Layout,
        id_text: str,
        time_text: str,
        time: datetime,
        data: Any,
    ) -> ReplayItem:
        item = cls.__new__(cls)
        item._view = None
        item.message, item.layout = message, layout
        item.id, item.time_text, item.time, item.data = id_text, time_text, time, data
        return item

    @property
    def attributes(self) -> dict[str, str] | None:
        """As `view.attributes` reads them, for a record of a known layout (else None)."""
        if self.layout is None:
            return None
        return {**self.layout.attributes, "id": self.id or "", "time": self.time_text or ""}

    @property
    def view(self) -> CloudEventView:
        if self._view is None:
            self._view = CloudEventView(ConsumedRecord(self.message))
        return self._view

    @property
    def record(self) -> KafkaRecord:
        return self.view.record

    @property
    def position(self) -> Position:
        if self._view is None and self.message is not None:
            partition, offset = self.message.partition(), self.message.offset()
        else:
            partition, offset = self.record.partition, self.record.offset
        assert partition is not None and offset is not None
        return partition, offset


class ReplayTarget(abc.ABC):
    """Takes batches of events; a batch is durable at the target when `write` returns,
    or for a target that makes it durable later, at its next `sync` that says so.

    `write` returns the positions it dead-lettered instead of writing (a sink that gave
    up on an event after its retries); every other item was written. Raising means the
    batch's fate is unknown: the replay stops there and `--resume` sends it again, which
    every target tolerates (files are rewritten from the saved position, audit storage is
    idempotent by topic/partition/offset, HTTP targets are at least once).
    """

    name: str = "target"
    # records per batch the target writes best; a sink asks for its own batch size
    batch_records: int = 1000

    # a target that writes each event as its JSON line (`replay.targets.jsonlines`): the
    # replay loop hands it a batch as those lines' pieces of bytes (`write_lines`), built
    # from the records' bytes without an object per record
    takes_lines: bool = False

    def accepts(self, event_type: str) -> bool:
        """The target's own type filter (a sink's `types`); replay counts the rest filtered."""
        return True

    @abc.abstractmethod
    def write(self, items: Sequence[ReplayItem]) -> set[Position]: ...

    def write_lines(self, pieces: Sequence[bytes]) -> None:
        """A batch as JSON lines, in pieces to be written one after another
        (`takes_lines` targets only); durable when it returns."""
        raise NotImplementedError(f"{self.name} does not take JSON lines")

    def sync(self, force: bool = False) -> bool:
        """After each write, in the writer thread: make what was written durable if it is
        time (always with `force`); True when everything written so far is durable, so
        the replay may save its position and commit under --group. A target that is
        durable whenever `write` returns (the default) always says True."""
        return True

    def resume_marker(self) -> int | None:
        """Saved with the replay's state after each batch (e.g. a file's size), so a
        resumed replay can cut what an interrupted write left beyond it."""
        return None

    def close(self) -> None:
        return None
