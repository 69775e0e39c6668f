"""A record's CloudEvent read from the bytes Kafka holds: attributes, checks, HTTP forms.

`decode` builds a cloudevents SDK object, which costs a JSON parse and an attribute
validation per record, and writing it out again re-encodes the data. A stage that only
forwards a record reads it through `CloudEventView` instead: attributes come lazily
from the `ce_*` headers, the data stays the value's bytes, and `http_binary` /
`http_structured` give the CloudEvents HTTP binding's forms of the same event. The SDK
stays the reference: tests/schemas/test_cloudevent_view.py holds every method here to
field-for-field equality with the SDK's reading of the same record, and `check` to
refusing exactly what `decode` refuses.

`LayoutCheck` is `check` for a stream of records from one encoder: a record whose
headers equal, apart from `ce_id` and `ce_time`, those of a record already checked the
slow way (`HeaderLayouts`) needs only its id, time and value checked.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import orjson

from schemas.codec import CONTENT_TYPE, REQUIRED_HEADERS, _parse_time
from schemas.errors import InvalidRecord
from schemas.record import KafkaRecord

KAFKA_PREFIX = "ce_"
HTTP_PREFIX = "ce-"
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
# the SDK's test for JSON data (cloudevents JSONFormat.JSON_CONTENT_TYPE_PATTERN)
_JSON_CONTENT = re.compile(r"^(application|text)/([a-zA-Z0-9\-\.]+\+)?json(;.*)?$")
# CloudEvents HTTP binding 3.1.3.2: printable ASCII stays, except space, '"' and '%'
_SAFE = "".join(c for c in map(chr, range(0x21, 0x7F)) if c not in ' "%')
# one character class: the alternation `[^\x21-\x7e]|["%]` took 2.5 times as long,
# once per attribute of every event the Knative sink posts (py-spy: 5% of its CPU)
_NEEDS_QUOTING = re.compile(r"[^\x21\x23\x24\x26-\x7e]")
_EXTENSION_NAME = re.compile(r"[a-z0-9]+\Z")
_CONTEXT = frozenset(
    {"id", "source", "type", "specversion", "time", "subject", "datacontenttype", "dataschema"}
)


# attribute names known to be valid: the same few on every record, checked once each
_VALID_NAMES: set[str] = set(_CONTEXT)
_MAX_VALID_NAMES = 1024


def percent_encode(value: str) -> str:
    """An attribute value as an HTTP header value (most need no change: skip `quote`)."""
    return quote(value, safe=_SAFE) if _NEEDS_QUOTING.search(value) else value


_UNPARSED = object()


class CloudEventView:
    """The CloudEvent of a binary-mode record, read lazily; the record is never changed."""

    __slots__ = ("_attributes", "_data", "_time", "record")

    def __init__(self, record: KafkaRecord) -> None:
        self.record = record
        self._attributes: dict[str, str] | None = None
        self._data: Any = _UNPARSED
        self._time: datetime | None = None

    @property
    def attributes(self) -> dict[str, str]:
        """Attribute → text as the headers hold it (`content-type` is datacontenttype).

        Names are lowercased and a repeated header's last value wins, as in the SDK."""
        if self._attributes is None:
            attributes: dict[str, str] = {}
            try:
                for name, raw in self.record.headers:
                    lowered = name.lower()
                    if lowered[:3] == KAFKA_PREFIX:
                        attributes[lowered[3:]] = raw.decode()
                    elif lowered == "content-type":
                        attributes["datacontenttype"] = raw.decode()
            except UnicodeDecodeError:
                _refuse_undecodable(self.record.headers, attributes_only=True)
                raise
            self._attributes = attributes
        return self._attributes

    def get(self, name: str) -> str | None:
        return self.attributes.get(name)

    @property
    def id(self) -> str:
        return self.attributes.get("id", "")

    @property
    def type(self) -> str:
        return self.attributes.get("type", "")

    def time(self) -> datetime:
        """`time` parsed as the SDK parses it (ValueError if it does not parse); parsed
        once: `check` parses it, the audit sink stores it."""
        if self._time is None:
            self._time = _parse_time(self.attributes["time"])
        return self._time

    def data(self) -> Any:
        """The data parsed: only for a stage that reads a field of it (InvalidRecord if it
        is not JSON). Parsed once (`check` parses it, the audit sink reads it again);
        what it returns is shared, never to be changed."""
        if self._data is _UNPARSED:
            try:
                self._data = orjson.loads(self.record.value or b"null")
            except orjson.JSONDecodeError as exc:
                raise InvalidRecord(f"data is not valid JSON: {exc}") from None
        return self._data

    def check(self, data: bool = True) -> None:
        """Raise `InvalidRecord` for exactly the records `schemas.decode` refuses.

        `decode`'s own rules, then the SDK event factory's attribute validation for what
        a header can carry (text values: only emptiness, the version, the time and the
        extension names can be wrong), then the data's JSON syntax (`data=False`: not
        the data, for a stage that passes it on unread; `data()` refuses it if read)."""
        headers = dict(self.record.headers)  # a repeated header: the last wins
        missing = [name for name in REQUIRED_HEADERS if name not in headers]
        if missing:
            raise InvalidRecord(
                f"not a binary-mode CloudEvent: missing header {', '.join(missing)}"
            )
        attributes = self.attributes  # the CloudEvent headers, read as text
        for name, raw in headers.items():  # the SDK reads every other header as text too
            if not name.startswith(KAFKA_PREFIX) and name != "content-type":
                _text(name, raw)
        content_type = _text("content-type", headers.get("content-type", b""))
        if content_type.split(";")[0].strip() != CONTENT_TYPE:
            raise InvalidRecord(
                f"content-type is {content_type or 'missing'!r}, expected {CONTENT_TYPE!r}"
            )
        value = self.record.value
        if value is None:
            raise InvalidRecord("record has no value (a tombstone is not an event)")
        if not value:
            raise InvalidRecord("record value is empty: a vcstream event always has data")
        if attributes.get("specversion") != "1.0":
            raise InvalidRecord(f"unsupported CloudEvents spec version {attributes['specversion']}")
        for name in ("id", "source", "type", "subject", "datacontenttype", "dataschema"):
            if name in attributes and not attributes[name]:
                raise InvalidRecord(f"invalid CloudEvent attributes: {name} is empty")
        for name in attributes:
            if name not in _VALID_NAMES:
                if name == "data" or not _EXTENSION_NAME.match(name):
                    raise InvalidRecord(f"invalid CloudEvent attributes: extension name {name!r}")
                if len(_VALID_NAMES) < _MAX_VALID_NAMES:  # bounded whatever the input
                    _VALID_NAMES.add(name)
        try:
            when = self.time()
        except (ValueError, OverflowError) as exc:
            raise InvalidRecord(f"invalid CloudEvent attributes: time: {exc}") from None
        if when.tzinfo is None:
            raise InvalidRecord("invalid CloudEvent attributes: time has no time zone")
        if data:
            self.data()

    def http_binary(self, changes: dict[str, str] | None = None) -> tuple[dict[str, str], bytes]:
        """Headers and body of the CloudEvents HTTP binary mode: the value unchanged.

        `time` is passed on as the header holds it (the SDK writes the same text for
        the RFC 3339 UTC form every vcstream record carries)."""
        attributes = self.attributes if not changes else {**self.attributes, **changes}
        headers: dict[str, str] = {}
        for name, text in attributes.items():
            if name == "datacontenttype":
                headers["content-type"] = text
            else:
                headers[HTTP_PREFIX + name] = percent_encode(text)
        return headers, self.record.value or b""

    def http_structured(
        self, changes: dict[str, str] | None = None
    ) -> tuple[dict[str, str], bytes]:
        """Headers and body of the structured mode: JSON data inserted as it is, not
        re-encoded; other data as `data_base64`."""
        attributes = self.attributes if not changes else {**self.attributes, **changes}
        value = self.record.value or b""
        head = orjson.dumps(attributes)[:-1]  # the object without its closing brace
        if not value:
            body = head + b"}"
        elif _JSON_CONTENT.match(attributes.get("datacontenttype", CONTENT_TYPE)):
            body = head + b',"data":' + value + b"}"
        else:
            body = head + b',"data_base64":' + orjson.dumps(base64.b64encode(value).decode()) + b"}"
        return {"content-type": STRUCTURED_CONTENT_TYPE}, body


# layouts kept by one `HeaderLayouts` (one per event type and source, in practice);
# forgotten all at once when full, so memory stays bounded whatever a topic holds
MAX_LAYOUTS = 4096
_Known = TypeVar("_Known")
# (position of ce_id, position of ce_time, number of headers)
_Shape = tuple[int, int, int]


class HeaderLayouts(Generic[_Known]):
    """What a stage knows of header sets it has seen, by everything but `ce_id` and
    `ce_time`: the same names in the same order, the same values.

    A topic's records come from few encoders, and an encoder's records of one event
    type and source differ in their headers only by the id and the time. What a stage
    decided about one such record (whatever `_Known` is) holds for the next apart from
    those two values, which `find` returns beside it. `learn` takes only header sets
    in which no name repeats (by case either: the last of a repeated attribute wins,
    and positions would then lie)."""

    def __init__(self, limit: int = MAX_LAYOUTS) -> None:
        self._limit = limit
        self._kept = 0
        self._shapes: dict[_Shape, tuple[Callable[[Any], Any], dict[Any, _Known]]] = {}

    def __len__(self) -> int:
        return self._kept

    def find(self, headers: Sequence[tuple[str, Any]]) -> tuple[_Known, Any, Any] | None:
        """What was learned of this header set, its ce_id value and its ce_time value."""
        size = len(headers)
        for (id_at, time_at, count), (others, known) in self._shapes.items():
            if count == size:
                id_header, time_header = headers[id_at], headers[time_at]
                if id_header[0] == "ce_id" and time_header[0] == "ce_time":
                    found = known.get(others(headers))
                    if found is not None:
                        return found, id_header[1], time_header[1]
        return None

    def find_with_shape(
        self, headers: Sequence[tuple[str, Any]]
    ) -> tuple[_Known, Any, Any, _Shape, Callable[[Any], Any]] | None:
        """`find`, and with it the shape (position of ce_id, of ce_time, number of
        headers) and the getter of the other headers: a caller that meets the same
        layout again can compare with what it found last instead of asking again."""
        size = len(headers)
        for shape, (others, known) in self._shapes.items():
            id_at, time_at, count = shape
            if count == size:
                id_header, time_header = headers[id_at], headers[time_at]
                if id_header[0] == "ce_id" and time_header[0] == "ce_time":
                    found = known.get(others(headers))
                    if found is not None:
                        return found, id_header[1], time_header[1], shape, others
        return None

    def learn(self, headers: Sequence[tuple[str, Any]], known: _Known) -> bool:
        """Keep `known` for this header set's layout; False: a layout not kept."""
        names = [name for name, _ in headers]
        if len({name.lower() for name in names}) != len(names):
            return False
        try:
            id_at, time_at = names.index("ce_id"), names.index("ce_time")
        except ValueError:
            return False
        positions = [i for i in range(len(names)) if i not in (id_at, time_at)]
        if len(positions) < 2:  # an itemgetter of one position gives no tuple
            return False
        if self._kept >= self._limit:
            self._shapes.clear()
            self._kept = 0
        shape = (id_at, time_at, len(names))
        if shape not in self._shapes:
            self._shapes[shape] = (itemgetter(*positions), {})
        others, layouts = self._shapes[shape]
        layouts[others(headers)] = known
        self._kept += 1
        return True


class LayoutCheck:
    """`CloudEventView.check` over many records, the same verdicts and reasons.

    `check` decides on the headers, the value and (with `data`) the data's JSON. A
    record whose other headers are those of a record it accepted (`HeaderLayouts`)
    needs only its id (UTF-8, not empty), its time (UTF-8, a time with a zone) and its
    value (not empty; JSON) checked, and its attributes are the known record's with
    that id and time. Anything else, and anything those checks refuse, goes the slow
    way, which says exactly what is wrong; tests/schemas/test_layout_check.py holds
    both ways to the same verdict, reason and attributes."""

    def __init__(self, limit: int = MAX_LAYOUTS) -> None:
        self._layouts: HeaderLayouts[dict[str, str]] = HeaderLayouts(limit)
        self.slow_checks = 0  # records checked the slow way

    def check(self, view: CloudEventView, data: bool = True) -> object | None:
        """Check `view`'s record (InvalidRecord says why not); its layout: the same
        object for every record whose headers differ from its only in the values of
        `ce_id` and `ce_time` (None: a record whose layout is not kept)."""
        record = view.record
        headers = record.headers
        found = self._layouts.find(headers) if headers else None
        if found is not None and record.value:
            known, id_raw, time_raw = found
            try:
                id_text, time_text = id_raw.decode(), time_raw.decode()
                when = _parse_time(time_text)
                fits = bool(id_text) and when.tzinfo is not None
            except (ValueError, OverflowError):  # UnicodeDecodeError is a ValueError
                fits = False
            if fits:
                attributes = known.copy()  # the same order: the headers' order
                attributes["id"], attributes["time"] = id_text, time_text
                view._attributes, view._time = attributes, when
                if data:
                    view.data()
                return known
        self.slow_checks += 1
        view.check(data)
        known = dict(view.attributes)
        return known if self._layouts.learn(headers, known) else None


def _refuse_undecodable(headers: Iterable[tuple[str, bytes]], attributes_only: bool) -> None:
    """Raise InvalidRecord naming the first header (of the attributes only, or of all)
    that is not UTF-8; the callers' fast loops only know that one is not."""
    for name, raw in headers:
        lowered = name.lower()
        if not attributes_only or lowered[:3] == KAFKA_PREFIX or lowered == "content-type":
            _text(name, raw)


def _text(name: str, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRecord(f"header {name} is not UTF-8: {raw[:40]!r}") from None
