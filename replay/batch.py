"""A batch of consumed messages checked, filtered and counted in one pass, from their bytes.

Replay's per-record work was a record object, a `CloudEventView`, its `check()`, a
line or item, and the tally's calls: 2-8 µs each, five times the cost of reading the
record. Here a batch is handled as confluent-kafka's messages, and a record is checked
against the *layout* of a record already checked the slow way: the same headers (names,
order and values) apart from `ce_id` and `ce_time`. `CloudEventView.check` decides on
exactly those headers, the id, the time and the value, so a record of a known layout
needs only its id, time and value checked; its structured-mode head is the layout's,
with the id and time spliced in. A record of no known layout (the first of each event
type, or anything odd) goes the slow way (`KafkaRecord`, `CloudEventView.check`,
`as_json_line`), which also gives a refusal its exact reason; tests/replay/
test_batch.py holds both ways to the same verdict and the same bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from replay.tally import MODULUS, record_digest
from replay.targets.base import Position, ReplayItem
from replay.targets.jsonlines import as_json_line, iso_second
from schemas import InvalidRecord, KafkaRecord
from schemas.cloudevent import MAX_LAYOUTS, CloudEventView, HeaderLayouts
from schemas.codec import _parse_time
from schemas.record import Message

# stand-ins for the id and the time while a layout's head is made: control characters
# that orjson escapes, so the head's other attributes cannot contain them
_ID_MARK = "\x00\x01id"
_TIME_MARK = "\x00\x02time"


@dataclass
class Counted:
    """What one batch did to one partition (added to its `PartitionTally` once written)."""

    first_offset: int
    last_offset: int = -1
    read: int = 0
    written: int = 0
    filtered: int = 0
    dead_lettered: int = 0
    checksum: int = 0
    first_time_ms: int | None = None
    last_time_ms: int | None = None
    undecodable: list[tuple[int, str]] = field(default_factory=list)  # offset, why


@dataclass
class Checked:
    """A batch: its counts per partition and what goes to the target (a line target's
    bytes, or another target's items)."""

    counted: dict[int, Counted]
    lines: bytes = b""
    items: list[ReplayItem] = field(default_factory=list)

    @property
    def read(self) -> int:
        return sum(c.read for c in self.counted.values())

    def dead_lettered(self, rejected: set[Position]) -> None:
        """The items the target gave up on: dead-lettered, not written (nor summed)."""
        for item in self.items:
            if item.position in rejected:
                partition, offset = item.position
                count = self.counted[partition]
                count.written -= 1
                count.dead_lettered += 1
                count.checksum = (
                    count.checksum - record_digest(partition, offset, item.view.id)
                ) % MODULUS


class Layout:
    """What every record of one header layout shares with the first one checked the
    slow way (`HeaderLayouts`: its headers but `ce_id` and `ce_time`)."""

    __slots__ = ("after", "attributes", "before", "between", "derived", "id_first", "written")

    def __init__(
        self,
        written: bool,
        before: bytes,
        between: bytes,
        after: bytes,
        id_first: bool,
        attributes: dict[str, str],
    ) -> None:
        self.written = written  # not filtered out
        # the JSON line's head before the first of id/time, between them, after them
        self.before, self.between, self.after = before, between, after
        self.id_first = id_first
        # the attributes but id and time, as `CloudEventView.attributes` reads them
        self.attributes = attributes
        # what a target made of this layout once (e.g. its own encoding of the headers):
        # kept here, so a target finds it without a lookup per record
        self.derived: Any = None


class BatchChecker:
    """Checks batches for one replay: `wanted(type)` says which event types are written
    (the replay's --type filter and the target's own); `lines` builds the target's JSON
    lines instead of items."""

    def __init__(self, topic: str, wanted: Callable[[str], bool], lines: bool) -> None:
        self.wanted = wanted
        self.lines = lines
        self._layouts: HeaderLayouts[Layout] = HeaderLayouts(MAX_LAYOUTS)
        self.slow_checks = 0  # records checked the slow way (no known layout, or refused)
        self._line_start = orjson.dumps({"topic": topic})[:-1] + b',"partition":'

    def check(self, messages: Sequence[Message]) -> Checked:
        counted: dict[int, Counted] = {}
        lines: list[bytes] = []
        items: list[ReplayItem] = []
        layouts = self._layouts
        line_start = self._line_start
        build_lines = self.lines
        sha256 = hashlib.sha256
        from_bytes = int.from_bytes
        loads = orjson.loads
        dumps = orjson.dumps
        parse_time = _parse_time
        second = -1
        second_text = b""
        for message in messages:
            partition: int = message.partition()  # type: ignore[assignment]
            offset: int = message.offset()  # type: ignore[assignment]
            count = counted.get(partition)
            if count is None:
                count = counted[partition] = Counted(offset)
            count.last_offset = offset
            count.read += 1
            has_time, time_ms = message.timestamp()
            if has_time:
                if count.first_time_ms is None or time_ms < count.first_time_ms:
                    count.first_time_ms = time_ms
                if count.last_time_ms is None or time_ms > count.last_time_ms:
                    count.last_time_ms = time_ms
            headers = message.headers()
            value = message.value()
            layout = None
            if headers and value and has_time:
                found = layouts.find(headers)
                if found is not None:
                    layout, id_raw, time_raw = found
            if layout is not None:
                try:
                    id_text = id_raw.decode()
                    time_text = time_raw.decode()
                    moment = parse_time(time_text)
                    if not id_text or moment.tzinfo is None:
                        layout = None
                    else:
                        data = loads(value)  # type: ignore[arg-type]
                except (ValueError, OverflowError, AttributeError):
                    layout = None  # the slow way says exactly what is wrong
            if layout is None:
                self._slow(message, count, lines, items)
                continue
            if not layout.written:
                count.filtered += 1
                continue
            count.written += 1
            count.checksum += from_bytes(
                sha256(b"%d:%d:%b" % (partition, offset, id_raw)).digest(),
                "big",
            )
            if not build_lines:
                # what was read here goes with the item, so a target reads nothing twice
                items.append(ReplayItem.read(message, layout, id_text, time_text, moment, data))
                continue
            key = message.key()
            if time_ms // 1000 != second:
                second = time_ms // 1000
                second_text = iso_second(second).encode()
            first, later = (id_text, time_text) if layout.id_first else (time_text, id_text)
            lines.append(
                b'%b%d,"offset":%d,"timestamp":"%b.%03dZ","key":%b,"event":%b%b%b%b%b,"data":%b}}\n'
                % (
                    line_start,
                    partition,
                    offset,
                    second_text,
                    time_ms % 1000,
                    b"null" if key is None else dumps(key.decode("utf-8", "replace")),
                    layout.before,
                    dumps(first),
                    layout.between,
                    dumps(later),
                    layout.after,
                    value,  # type: ignore[str-format]
                )
            )
        for count in counted.values():
            count.checksum %= MODULUS
        return Checked(counted, b"".join(lines), items)

    def layouts_kept(self) -> int:
        return len(self._layouts)

    def _slow(
        self, message: Message, count: Counted, lines: list[bytes], items: list[ReplayItem]
    ) -> None:
        """`CloudEventView.check` itself: the verdict and its reason, and the layout
        learned from a record it accepts."""
        self.slow_checks += 1
        record = KafkaRecord.from_confluent(message)
        view = CloudEventView(record)
        try:
            view.check()
        except InvalidRecord as exc:
            count.undecodable.append((record.offset, str(exc)))  # type: ignore[arg-type]
            return
        written = self.wanted(view.type)
        self._learn(message, view, written)
        if not written:
            count.filtered += 1
            return
        count.written += 1
        digest = hashlib.sha256(f"{record.partition}:{record.offset}:{view.id}".encode())
        count.checksum += int.from_bytes(digest.digest(), "big")
        if self.lines:
            lines.append(as_json_line(ReplayItem(view)))
        else:
            items.append(ReplayItem(view))

    def _learn(self, message: Message, view: CloudEventView, written: bool) -> None:
        headers = message.headers() or []
        names = [name for name, _ in headers]
        if names.count("ce_id") != 1 or names.count("ce_time") != 1:
            return
        # a repeated attribute (last one wins) would make the positions lie
        attribute_names = [
            n.lower() for n in names if n.lower()[:3] == "ce_" or n.lower() == "content-type"
        ]
        if len(set(attribute_names)) != len(attribute_names) or len(set(names)) != len(names):
            return
        value = view.record.value or b""
        _, body = view.http_structured({"id": _ID_MARK, "time": _TIME_MARK})
        tail = b',"data":' + value + b"}"
        if not body.endswith(tail):  # data written as data_base64: the slow way
            return
        head = body[: -len(tail)]
        id_mark, time_mark = orjson.dumps(_ID_MARK), orjson.dumps(_TIME_MARK)
        if head.count(id_mark) != 1 or head.count(time_mark) != 1:
            return
        id_first = head.index(id_mark) < head.index(time_mark)
        first, later = (id_mark, time_mark) if id_first else (time_mark, id_mark)
        pre, rest = head.split(first)
        mid, post = rest.split(later)
        attributes = {k: v for k, v in view.attributes.items() if k not in ("id", "time")}
        self._layouts.learn(headers, Layout(written, pre, mid, post, id_first, attributes))
