"""A webhook request's CloudEvents: parsed with the SDK's HTTP binding, checked, as records.

Binary and structured mode are the cloudevents SDK's `cloudevents.core.bindings.http`
(`from_binary`, `from_structured`); the SDK has no batched mode, so each element of an
`application/cloudevents-batch+json` array is read with `from_structured`. Data is read
with schemas' strict JSON format, so invalid JSON is an error rather than a string.

What the SDK would silently invent is checked first: it fills a missing `id` with a
random UUID (a sender's duplicates would no longer be detectable). A missing `time` is
filled with the time of receipt, as the SDK does: every record on a vcstream topic
carries a time. Each record is finally held to `CloudEventView.check`, exactly what
every downstream stage accepts, so the gateway never writes a record a sink would
dead-letter (data must be JSON: the topics carry `application/json` only).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from cloudevents.core.bindings import http as http_binding
from cloudevents.core.v1.event import CloudEvent

import schemas
from schemas.codec import CONTENT_TYPE, StrictJSONFormat
from schemas.errors import InvalidRecord
from schemas.record import KafkaRecord

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
REQUIRED = ("specversion", "id", "source", "type")
_FORMAT = StrictJSONFormat()


class Rejected(Exception):
    """The request is refused as a whole: `status` and a reason naming the bad event."""

    def __init__(self, status: int, reason: str, cause: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.cause = cause  # a bounded label for metrics
        self.events = 1  # events refused with it: a batch is refused whole


@dataclass(frozen=True)
class Limits:
    max_event_size: int
    max_batch_events: int


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def parse(headers: Mapping[str, str], body: bytes, limits: Limits) -> list[CloudEvent]:
    """Every event of a request, or Rejected for the first bad one (nothing is kept)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    kind = media_type(lowered.get("content-type"))
    if any(name.startswith(http_binding.CE_PREFIX) for name in lowered):
        return [_binary(lowered, body, limits)]
    if kind == STRUCTURED:
        return [_structured(_object(body, "the body"), body, limits, "the event")]
    if kind == BATCH:
        return _batch(body, limits)
    raise Rejected(
        415,
        f"not a CloudEvent: content type {kind or 'missing'!r}; send binary mode (ce-* "
        f"headers, data as {CONTENT_TYPE}), {STRUCTURED} or {BATCH}",
        "not_cloudevent",
    )


def _binary(headers: dict[str, str], body: bytes, limits: Limits) -> CloudEvent:
    what = f"event {headers['ce-id']!r}" if headers.get("ce-id") else "the event"
    missing = [name for name in REQUIRED if f"ce-{name}" not in headers]
    if missing:
        raise Rejected(400, f"{what}: missing attribute {', '.join(missing)}", "invalid")
    _check_size(len(body), limits, what)
    content_type = media_type(headers.get("content-type"))
    if content_type != CONTENT_TYPE:
        raise Rejected(
            415,
            f"{what}: data content type {content_type or 'missing'!r}, expected {CONTENT_TYPE!r}",
            "content_type",
        )
    message = http_binding.HTTPMessage(headers=headers, body=body)
    return _checked(lambda: http_binding.from_binary(message, _FORMAT, CloudEvent), what)


def _batch(body: bytes, limits: Limits) -> list[CloudEvent]:
    try:
        items = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Rejected(400, f"the batch is not valid JSON: {exc}", "invalid") from None
    if not isinstance(items, list) or not items:
        raise Rejected(400, "a batch is a non-empty JSON array of events", "invalid")
    if len(items) > limits.max_batch_events:
        raise Rejected(
            413, f"{len(items)} events in one batch, at most {limits.max_batch_events}", "too_large"
        )
    events = []
    try:
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise Rejected(400, f"event {index} of the batch is not a JSON object", "invalid")
            what = f"event {index} of the batch (id {item.get('id')!r})"
            events.append(_structured(item, orjson.dumps(item), limits, what))
    except Rejected as rejected:
        rejected.events = len(items)
        raise
    return events


def _object(body: bytes, what: str) -> dict[str, Any]:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Rejected(400, f"{what} is not valid JSON: {exc}", "invalid") from None
    if not isinstance(parsed, dict):
        raise Rejected(400, f"{what} is not a JSON object", "invalid")
    return parsed


def _structured(item: dict[str, Any], raw: bytes, limits: Limits, what: str) -> CloudEvent:
    missing = [name for name in REQUIRED if name not in item]
    if missing:
        raise Rejected(400, f"{what}: missing attribute {', '.join(missing)}", "invalid")
    _check_size(len(raw), limits, what)
    content_type = media_type(item.get("datacontenttype") or CONTENT_TYPE)
    if content_type != CONTENT_TYPE:
        raise Rejected(
            415,
            f"{what}: data content type {content_type!r}, expected {CONTENT_TYPE!r}",
            "content_type",
        )
    message = http_binding.HTTPMessage(headers={"content-type": STRUCTURED}, body=raw)
    return _checked(lambda: http_binding.from_structured(message, _FORMAT, CloudEvent), what)


def _check_size(size: int, limits: Limits, what: str) -> None:
    if size > limits.max_event_size:
        raise Rejected(413, f"{what}: {size} bytes, at most {limits.max_event_size}", "too_large")


def _checked(read: Any, what: str) -> CloudEvent:
    try:
        event = read()
    except Exception as exc:  # the SDK raises several types for bad attributes and data
        raise Rejected(400, f"{what}: {exc}", "invalid") from None
    if not isinstance(event, CloudEvent):  # a 0.3 event: vcstream's topics carry 1.0
        raise Rejected(400, f"{what}: specversion must be 1.0", "invalid")
    return event


def to_records(events: Sequence[CloudEvent], key: Sequence[str]) -> list[KafkaRecord]:
    """Each event as the binary-mode record schemas writes, or Rejected naming the first
    one a downstream stage would refuse."""
    records = []
    for index, given in enumerate(events):
        what = f"event {index} (id {given.get_id()!r})" if len(events) > 1 else "the event"
        event = given
        if given.get_datacontenttype() is None:  # JSON, as the structured mode implies
            attributes = {**given.get_attributes(), "datacontenttype": CONTENT_TYPE}
            event = CloudEvent(attributes, given.get_data())
        try:
            record = schemas.encode(event, record_key(event, key))
            record.cloudevent().check()
        except (ValueError, InvalidRecord) as exc:
            rejected = Rejected(400, f"{what}: {exc}", "invalid")
            rejected.events = len(events)
            raise rejected from None
        records.append(record)
    return records


def record_key(event: CloudEvent, attributes: Sequence[str]) -> str | None:
    """The configured attributes' values joined by `/` (per-source, per-subject order)."""
    values = [event.get_attributes().get(name) for name in attributes]
    present = [str(value) for value in values if value not in (None, "")]
    return "/".join(present) or None
