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

Where a replay into a file spends its main thread's CPU after this (py-spy, 200,000
records on 6 partitions): confluent-kafka's own per-message work (consume, `headers()`,
their deallocation) ~39%; the data's JSON check (orjson.loads, the verdict `check`
gives) ~17%; the checksum's SHA-256 ~10%; the comparison of the headers with the
layout's ~5%; the time's verdict ~5% (`ZonedTimes`: no parse for a second seen
before); the rest is this loop's interpreter work and the line's head (~5%).
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
from schemas.zoned_times import ZonedTimes

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
    lines as pieces of bytes, or another target's items).

    A line is a few pieces (its head, the record's value as the message holds it, its
    tail), written as they are (`os.writev`): joining them first cost a copy of every
    value and, for a fresh buffer of megabytes, its page faults."""

    counted: dict[int, Counted]
    pieces: list[bytes] = field(default_factory=list)
    items: list[ReplayItem] = field(default_factory=list)

    @property
    def lines(self) -> bytes:
        return b"".join(self.pieces)

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


_LINE_END = b"}}\n"  # after the value: the event's brace, the line's, the newline

# record keys whose JSON is kept (one per managed entity, in practice); forgotten all at
# once when full, so memory stays bounded whatever a topic holds
MAX_KEYS = 4096


def _key_json(key: bytes | None) -> bytes:
    """A record key as its line writes it (`as_json_line`)."""
    return b"null" if key is None else orjson.dumps(key.decode("utf-8", "replace"))


def _nothing(headers: Any) -> None:
    return None


def _store(
    count: Counted,
    last_offset: int,
    read: int,
    written: int,
    filtered: int,
    checksum: int,
    low: int | None,
    high: int | None,
) -> None:
    """Add what the line loop counted in locals for a run of one partition's records."""
    count.last_offset = last_offset
    count.read += read
    count.written += written
    count.filtered += filtered
    count.checksum += checksum
    if low is not None and (count.first_time_ms is None or low < count.first_time_ms):
        count.first_time_ms = low
    if high is not None and (count.last_time_ms is None or high > count.last_time_ms):
        count.last_time_ms = high


class Layout:
    """What every record of one header layout shares with the first one checked the
    slow way (`HeaderLayouts`: its headers but `ce_id` and `ce_time`)."""

    __slots__ = (
        "after",
        "attributes",
        "before",
        "between",
        "data_head",
        "derived",
        "id_first",
        "written",
    )

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
        self.data_head = after + b',"data":'  # a line's head ends here; the value follows
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
        self._keys: dict[bytes | None, bytes] = {}  # a record key -> its JSON (`_key_json`)
        # a line needs only the time's verdict, not the time: kept per second
        self._times = ZonedTimes()

    def check(self, messages: Sequence[Message]) -> Checked:
        if self.lines:
            return self._check_lines(messages)
        return self._check_items(messages)

    def _check_lines(self, messages: Sequence[Message]) -> Checked:
        """The line target's batch: per record only what differs from its layout is read
        (id, time, value, key, where), the rest of its line is the layout's bytes.

        Written for the interpreter: the partition's counts are kept in locals while its
        records run (a fetch gives a partition's records one after another) and stored
        on a change; the layout is first compared with the last record's (records of
        one event type come in runs) before the dict is asked; a key's JSON is cached."""
        counted: dict[int, Counted] = {}
        pieces: list[bytes] = []
        add = pieces.extend
        layouts = self._layouts
        keys = self._keys
        line_start = self._line_start
        sha256 = hashlib.sha256
        from_bytes = int.from_bytes
        loads = orjson.loads
        dumps = orjson.dumps
        zoned = self._times.zoned
        second = -1
        second_text = b""
        # the last layout found: the headers but id and time as a tuple, and the layout
        last_shape: tuple[int, int, int] = (-1, -1, -1)
        last_others: Any = None
        last_pick: Callable[[Any], Any] = _nothing
        last_layout: Layout | None = None
        # the running partition's counts (see the docstring)
        count: Counted | None = None
        current = -1
        read = written = filtered = checksum = 0
        low: int | None = None  # the partition's timestamps seen in this batch
        high: int | None = None
        offset = -1
        for message in messages:
            partition: int = message.partition()  # type: ignore[assignment]
            if partition != current:
                if count is not None:
                    _store(count, offset, read, written, filtered, checksum, low, high)
                count = counted.get(partition)
                if count is None:
                    count = counted[partition] = Counted(message.offset())  # type: ignore[arg-type]
                current = partition
                read = written = filtered = checksum = 0
                low = high = None
            offset = message.offset()  # type: ignore[assignment]
            read += 1
            has_time, time_ms = message.timestamp()
            if has_time:
                if low is None or time_ms < low:
                    low = time_ms
                if high is None or time_ms > high:
                    high = time_ms
            headers = message.headers()
            value = message.value()
            layout = None
            if headers and value and has_time:
                size = len(headers)
                id_at, time_at, _ = last_shape
                if (
                    last_shape[2] == size
                    and headers[id_at][0] == "ce_id"
                    and headers[time_at][0] == "ce_time"
                    and last_pick(headers) == last_others
                ):
                    layout = last_layout
                    id_raw, time_raw = headers[id_at][1], headers[time_at][1]
                else:
                    found = layouts.find_with_shape(headers)
                    if found is not None:
                        layout, id_raw, time_raw, last_shape, last_pick = found
                        last_others, last_layout = last_pick(headers), layout
            if layout is not None:
                try:
                    id_text = id_raw.decode()
                    time_text = time_raw.decode()
                    if not id_text or not zoned(time_text):
                        layout = None
                    else:
                        loads(value)  # type: ignore[arg-type]
                except (ValueError, OverflowError, AttributeError):
                    layout = None  # the slow way says exactly what is wrong
            if layout is None:
                _store(count, offset, read, written, filtered, checksum, low, high)  # type: ignore[arg-type]
                read = written = filtered = checksum = 0
                low = high = None
                self._slow(message, count, pieces, [])  # type: ignore[arg-type]
                continue
            if not layout.written:
                filtered += 1
                continue
            written += 1
            digest = sha256(b"%d:%d:%b" % (partition, offset, id_raw)).digest()
            checksum += from_bytes(digest, "big")
            raw_key = message.key()
            key = keys.get(raw_key)
            if key is None:
                key = _key_json(raw_key)
                if len(keys) >= MAX_KEYS:
                    keys.clear()
                keys[raw_key] = key
            if time_ms // 1000 != second:
                second = time_ms // 1000
                second_text = iso_second(second).encode()
            first, later = (id_text, time_text) if layout.id_first else (time_text, id_text)
            add(
                (
                    b'%b%d,"offset":%d,"timestamp":"%b.%03dZ","key":%b,"event":%b%b%b%b%b'
                    % (
                        line_start,
                        partition,
                        offset,
                        second_text,
                        time_ms % 1000,
                        key,
                        layout.before,
                        dumps(first),
                        layout.between,
                        dumps(later),
                        layout.data_head,
                    ),
                    value,  # type: ignore[arg-type]
                    _LINE_END,
                )
            )
        if count is not None:
            _store(count, offset, read, written, filtered, checksum, low, high)
        for count in counted.values():
            count.checksum %= MODULUS
        return Checked(counted, pieces)

    def _check_items(self, messages: Sequence[Message]) -> Checked:
        counted: dict[int, Counted] = {}
        items: list[ReplayItem] = []
        layouts = self._layouts
        sha256 = hashlib.sha256
        from_bytes = int.from_bytes
        loads = orjson.loads
        parse_time = _parse_time
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
                self._slow(message, count, [], items)
                continue
            if not layout.written:
                count.filtered += 1
                continue
            count.written += 1
            count.checksum += from_bytes(
                sha256(b"%d:%d:%b" % (partition, offset, id_raw)).digest(),
                "big",
            )
            # what was read here goes with the item, so a target reads nothing twice
            items.append(ReplayItem.read(message, layout, id_text, time_text, moment, data))
        for count in counted.values():
            count.checksum %= MODULUS
        return Checked(counted, items=items)

    def layouts_kept(self) -> int:
        return len(self._layouts)

    def _slow(
        self, message: Message, count: Counted, pieces: list[bytes], items: list[ReplayItem]
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
            pieces.append(as_json_line(ReplayItem(view)))
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
