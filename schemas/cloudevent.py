"""A record's CloudEvent read from the bytes Kafka holds: attributes, checks, HTTP forms.

`decode` builds a cloudevents SDK object, which costs a JSON parse and an attribute
validation per record, and writing it out again re-encodes the data. A stage that only
forwards a record reads it through `CloudEventView` instead: attributes come lazily
from the `ce_*` headers, the data stays the value's bytes, and `http_binary` /
`http_structured` give the CloudEvents HTTP binding's forms of the same event. The SDK
stays the reference: tests/schemas/test_cloudevent_view.py holds every method here to
field-for-field equality with the SDK's reading of the same record, and `check` to
refusing exactly what `decode` refuses.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from typing import Any
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


class CloudEventView:
    """The CloudEvent of a binary-mode record, read lazily; the record is never changed."""

    __slots__ = ("_attributes", "record")

    def __init__(self, record: KafkaRecord) -> None:
        self.record = record
        self._attributes: dict[str, str] | None = None

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

    def data(self) -> Any:
        """The data parsed: only for a stage that reads a field of it (InvalidRecord if it
        is not JSON)."""
        try:
            return orjson.loads(self.record.value or b"null")
        except orjson.JSONDecodeError as exc:
            raise InvalidRecord(f"data is not valid JSON: {exc}") from None

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
            when = _parse_time(attributes["time"])
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
