"""CloudEvent ⇄ Kafka record, through the cloudevents SDK's Kafka binding (binary mode).

`encode`/`decode` are the only way any component turns events into records and back;
`encode_event` takes a pyVmomi event straight to its record.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import orjson
from cloudevents.core.bindings.common import get_event_factory_for_version
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from dateutil.parser import isoparse  # type: ignore[import-untyped]

from schemas.errors import InvalidRecord
from schemas.record import KafkaRecord
from schemas.vsphere import VCenterIdentity, as_utc, event_class_kind, event_id, event_type
from schemas.vsphere import record_key as vsphere_record_key

CONTENT_TYPE = "application/json"
# `time` is optional in CloudEvents, but the SDK invents "now" for a record without it;
# every vcstream record carries the event's own time, so its absence is an error
REQUIRED_HEADERS = ("ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time")
# the Kafka binding maps the record key to this extension on decode; it is not part of
# the event vcstream stores, so it is dropped again
PARTITION_KEY = "partitionkey"


class _DataError(ValueError):
    pass


class StrictJSONFormat(JSONFormat):
    """The SDK's JSON format, minus its silent fallbacks.

    The SDK writes a list as Python's `str()` and reads invalid JSON back as a string;
    here any JSON value round-trips and invalid data is an error. Data is written
    compactly, as Go (and so VEBA) writes it, with orjson: the stdlib's json is the
    largest cost of the codec (integers are limited to 64 bits, as in Go).
    """

    def write_data(
        self, data: dict[str, Any] | str | bytes | None, datacontenttype: str | None
    ) -> bytes:
        if data is None:
            return b""
        if isinstance(data, bytes | bytearray):
            return bytes(data)
        return orjson.dumps(data, default=_json_default, option=orjson.OPT_UTC_Z)

    def read_data(
        self, body: bytes, datacontenttype: str | None
    ) -> dict[str, Any] | str | bytes | None:
        if not body:
            return None
        try:
            parsed: dict[str, Any] = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise _DataError(f"data is not valid JSON: {exc}") from None
        return parsed


_FORMAT = StrictJSONFormat()


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    raise TypeError(f"a {type(value).__name__} is not JSON serializable")


def vsphere_cloudevent(
    data: dict[str, Any],
    class_name: str,
    vcenter: VCenterIdentity,
) -> CloudEvent:
    """A vCenter event (already in VEBA's JSON shape) as a VEBA v0.8 CloudEvent."""
    created_time, key = _created_and_key(data, class_name)
    return CloudEvent(
        attributes={
            "id": event_id(vcenter.instance_uuid, key, created_time),
            "source": vcenter.source,
            "type": event_type(class_name, data.get("EventTypeId")),
            # the SDK fills `time` with "now" when absent: always the event's own time
            "time": as_utc(created_time),
            "datacontenttype": CONTENT_TYPE,
            "subject": class_name,
            "eventclass": event_class_kind(class_name),
            "vsphereapiversion": vcenter.api_version,
        },
        data=data,
    )


def _created_and_key(data: dict[str, Any], class_name: str) -> tuple[datetime, int]:
    created = data.get("CreatedTime")
    if isinstance(created, str):
        try:
            created_time = datetime.fromisoformat(created.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{class_name} has an invalid CreatedTime {created!r}") from None
    elif isinstance(created, datetime):
        created_time = created
    else:
        raise ValueError(f"{class_name} has no CreatedTime")
    try:
        key = int(data["Key"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{class_name} has no integer Key: {data.get('Key')!r}") from None
    return created_time, key


def encode(event: CloudEvent, key: bytes | str | None = None) -> KafkaRecord:
    """A CloudEvent as a binary-mode Kafka record.

    The headers and value are those the SDK's `kafka.to_binary` writes, in its order
    (tests/schemas/test_codec.py holds the two equal), made in one pass: the SDK's
    function builds a dict and a message object per record, which the streams worker
    paid for every event a processor or the enrichment makes.
    """
    attributes = event.get_attributes()
    time = attributes.get("time")
    if isinstance(time, datetime) and (time.tzinfo is None or time.utcoffset()):
        # RFC 3339 offsets are whole minutes; Python writes historic zones' seconds
        # (e.g. -00:16:08), which the SDK's own parser then rejects: write UTC
        event = with_changes(event, time=as_utc(time))
        attributes = event.get_attributes()
    headers: list[tuple[str, bytes]] = []
    for name, value in attributes.items():
        if value is None:
            continue
        if name == "datacontenttype":
            headers.append(("content-type", str(value).encode()))
        elif isinstance(value, datetime):
            stamp = value.isoformat()
            headers.append(
                ("ce_" + name, (stamp[:-6] + "Z" if stamp.endswith("+00:00") else stamp).encode())
            )
        else:
            headers.append(("ce_" + name, str(value).encode()))
    try:
        value = _FORMAT.write_data(event.get_data(), attributes.get("datacontenttype"))
    except TypeError as exc:
        raise ValueError(f"event {event.get_id()} has data that is not JSON: {exc}") from None
    return KafkaRecord(
        value=value, key=key.encode() if isinstance(key, str) else key, headers=headers
    )


def encode_vsphere(data: dict[str, Any], class_name: str, vcenter: VCenterIdentity) -> KafkaRecord:
    """A vCenter event's JSON as a record keyed by vCenter + entity.

    The record `encode(vsphere_cloudevent(...))` makes, byte for byte, without the SDK's
    CloudEvent per event: the headers a vCenter's events share are taken from its first
    record, which goes through the SDK (and its validation of them); the rest are made
    here as `kafka_binding.to_binary` writes them (tests/schemas/test_codec.py holds the
    two equal for generated events of every class).
    """
    shared = _SHARED_HEADERS.get(vcenter)
    if shared is None or not class_name:  # (an empty subject: the SDK's error)
        record = encode(
            vsphere_cloudevent(data, class_name, vcenter),
            vsphere_record_key(vcenter.instance_uuid, data),
        )
        first = dict(record.headers)
        _SHARED_HEADERS[vcenter] = (first["ce_source"], first["ce_vsphereapiversion"])
        return record
    source, api_version = shared
    created_time, key = _created_and_key(data, class_name)
    moment = as_utc(created_time)
    ident = event_id(vcenter.instance_uuid, key, moment)
    stamp = moment.isoformat()
    try:
        value = _FORMAT.write_data(data, CONTENT_TYPE)
    except TypeError as exc:
        raise ValueError(f"event {ident} has data that is not JSON: {exc}") from None
    headers: list[tuple[str, bytes]] = [
        ("ce_id", ident.encode()),
        ("ce_source", source),
        ("ce_type", event_type(class_name, data.get("EventTypeId")).encode()),
        ("ce_time", (stamp[:-6] + "Z" if stamp.endswith("+00:00") else stamp).encode()),
        ("content-type", _CONTENT_TYPE_BYTES),
        ("ce_subject", class_name.encode()),
        ("ce_eventclass", event_class_kind(class_name).encode()),
        ("ce_vsphereapiversion", api_version),
        ("ce_specversion", _SPECVERSION_BYTES),
    ]
    return KafkaRecord(value, vsphere_record_key(vcenter.instance_uuid, data), headers)


# per vCenter: the `ce_source` and `ce_vsphereapiversion` bytes of its records
_SHARED_HEADERS: dict[VCenterIdentity, tuple[bytes, bytes]] = {}
_CONTENT_TYPE_BYTES = CONTENT_TYPE.encode()
_SPECVERSION_BYTES = b"1.0"


def encode_event(event: Any, vcenter: VCenterIdentity) -> KafkaRecord:
    """A pyVmomi event (any of vSphere's event classes) as its Kafka record."""
    # imported here: pyVmomi's type tables take ~0.4 CPU-s to load, and only the producer
    # encodes pyVmomi events (replay, sinks and the streams worker read bytes)
    from schemas.vmodl_json import GoEvent, event_class_name, to_go_json

    if isinstance(event, GoEvent):  # read from the SOAP XML straight into Go JSON
        return encode_vsphere(event.data, event.class_name, vcenter)
    return encode_vsphere(to_go_json(event), event_class_name(event), vcenter)


_UNPARSED: Any = object()


def decode(record: KafkaRecord, data: Any = _UNPARSED) -> CloudEvent:
    """The CloudEvent in a record; InvalidRecord says precisely what is wrong otherwise.

    `data`: the record's value already parsed (`CloudEventView.data()`), not parsed again.
    """
    headers: dict[str, bytes] = dict(record.headers)  # a repeated header: the last wins
    missing = [name for name in REQUIRED_HEADERS if name not in headers]
    if missing:
        raise InvalidRecord(f"not a binary-mode CloudEvent: missing header {', '.join(missing)}")
    for name, value in headers.items():
        if name.startswith("ce_") or name == "content-type":
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidRecord(f"header {name} is not UTF-8: {value[:40]!r}") from None
    content_type = headers.get("content-type", b"").decode()
    if content_type.split(";")[0].strip() != CONTENT_TYPE:
        raise InvalidRecord(
            f"content-type is {content_type or 'missing'!r}, expected {CONTENT_TYPE!r}"
        )
    if record.value is None:
        raise InvalidRecord("record has no value (a tombstone is not an event)")
    if not record.value:
        raise InvalidRecord("record value is empty: a vcstream event always has data")
    try:
        event = _from_binary(headers, record.value, data)
    except _DataError as exc:
        raise InvalidRecord(str(exc)) from None
    except Exception as exc:  # the SDK raises several types for bad attributes
        raise InvalidRecord(f"invalid CloudEvent attributes: {exc}") from None
    if not isinstance(event, CloudEvent):
        raise InvalidRecord(f"unsupported CloudEvents spec version {event.get_specversion()}")
    return event


# RFC 3339 as every vcstream record writes it (seconds, optional fraction, Z or offset)
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)\Z")


def _parse_time(text: str) -> datetime:
    """The SDK's parse of `ce_time` (dateutil's isoparse), fast for RFC 3339.

    isoparse is general and the largest cost of a decode; the stdlib parses the RFC 3339
    form to the same instant. Anything else, and any value the stdlib refuses, goes to
    isoparse, so what is accepted and the errors are the SDK's.
    """
    if _RFC3339.match(text):
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            pass
    parsed: datetime = isoparse(text)
    return parsed


def _from_binary(headers: dict[str, bytes], value: bytes, data: Any = _UNPARSED) -> Any:
    """`kafka_binding.from_binary` for a record without key (it would only become the
    `partitionkey` that vcstream drops), with the fast `ce_time` parse: the same
    attributes, data and validation (the event factory's), at a fraction of the cost."""
    attributes: dict[str, Any] = {}
    for header_name, raw in headers.items():
        text = raw.decode("utf-8")  # every header, as the SDK does (non-UTF-8: invalid)
        name = header_name.lower()
        if name.startswith("ce_"):
            attribute = name[3:]
            attributes[attribute] = _parse_time(text) if attribute == "time" else text
        elif name == "content-type":
            attributes["datacontenttype"] = text
    factory = get_event_factory_for_version(attributes.get("specversion", "1.0"))
    if data is _UNPARSED:
        data = _FORMAT.read_data(value, attributes.get("datacontenttype"))
    return factory(attributes, data)


def from_attributes(attributes: dict[str, str], data: Any) -> CloudEvent:
    """The CloudEvent of a record whose headers `CloudEventView.check` accepted, from the
    attributes it read as text and the data it parsed: what `decode` builds, without
    reading the headers or the value a second time."""
    built: dict[str, Any] = dict(attributes)
    built["time"] = _parse_time(attributes["time"])
    try:
        return CloudEvent(attributes=built, data=data)
    except Exception as exc:  # the SDK raises several types for bad attributes
        raise InvalidRecord(f"invalid CloudEvent attributes: {exc}") from None


def with_changes(
    event: CloudEvent, data: dict[str, Any] | None = None, **attributes: Any
) -> CloudEvent:
    """A copy of an event with some attributes (and optionally data) replaced."""
    merged = {k: v for k, v in event.get_attributes().items() if k != PARTITION_KEY}
    merged.update(attributes)
    return CloudEvent(attributes=merged, data=event.get_data() if data is None else data)
