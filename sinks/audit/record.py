"""The audit record (`schemas/audit_record.avsc`) and its hash chain.

A record keeps the Kafka record exactly as it was read: key, headers and value bytes,
with topic, partition, offset and timestamp. Beside them it keeps the attributes it is
searched by (id, type, source, subject, time, vCenter, entity), read from the `ce_*`
headers through `schemas.cloudevent.CloudEventView`: the value is parsed (orjson) only
to find the entity's name. Nothing goes through the cloudevents SDK.

The chain's unit is one record: each carries `prevHash`, the hash of the record before
it in the same topic-partition, and `hash` over `prevHash` and every other field. So a
single record is proven on its own (recompute its hash from its fields) and placed (its
hash is the next record's `prevHash`, up to the head the sink committed and sealed);
the PostgreSQL backend has no blocks anyway. A hash per Avro block would save only a
`hashlib` call per record (the bytes hashed are the same) and would need the whole
block to prove one record.

Hash versions (`hashVersion`), so what was stored before keeps verifying:

- 1: SHA-256 of canonical JSON (sorted keys) of the searchable fields and `event`, the
  CloudEvent re-encoded by the SDK; the bytes Kafka held were not kept.
- 2: SHA-256 of `vcstream-audit-v2`, then every field in `V2_FIELDS` order, each
  tagged and length-prefixed (`_frame`), bytes fields as their raw bytes; `event` is
  empty (the event is the headers + `value`).
- 3: SHA-256 of `vcstream-audit-v3`, then the record's Avro binary encoding without
  its last field, `hash` (`encoding.encode_body`: every other field, in the order of
  `schemas/audit_record.avsc`): the bytes a file stores, so the files backend encodes
  a record once and hashes those bytes; Avro's encoding of a fixed schema is as
  unambiguous as version 2's framing. Same fields as version 2.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import orjson

from schemas.cloudevent import CloudEventView
from schemas.record import KafkaRecord, Message
from schemas.vsphere import ENTITY_FIELDS
from sinks.audit.encoding import (
    LENGTHS,
    NULL,
    SOME,
    cached_string,
    encode_body,
    encode_hash,
    encode_head_parts,
    encode_optional,
    encode_optional_bytes,
    encode_record_head,
    headers_around,
    long,
    micros,
    moment,
    raw,
    string,
)

GENESIS = "0" * 64
HASH_VERSION = 3
AuditRecord = dict[str, Any]
# the fields hash version 1 covers (`hash` itself excluded)
HASHED_FIELDS = (
    "topic", "partition", "offset", "id", "type", "source", "subject", "time",
    "vcenterUuid", "entity", "entityName", "event", "recordedAt", "prevHash",
)  # fmt: skip
# the fields hash version 2 covers, in this order: every stored field but `hash`
V2_FIELDS = (
    "hashVersion", "topic", "partition", "offset", "timestamp", "key", "headerNames",
    "headerValues", "value",
    "id", "type", "source", "subject", "time", "vcenterUuid", "entity", "entityName",
    "event", "recordedAt", "prevHash",
)  # fmt: skip
_V2_PREFIX = b"vcstream-audit-v2"
# hash version 3 up to the record: copied per record, never updated
V3_START = hashlib.sha256(b"vcstream-audit-v3")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class UnknownHashVersion(ValueError):
    """A record whose `hashVersion` this release does not know (written by a newer one)."""


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        return _utc(value).isoformat(timespec="microseconds")
    return value


def _hash_v1(record: AuditRecord) -> str:
    payload = json.dumps(
        {name: _canonical(record.get(name)) for name in HASHED_FIELDS},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _frame(value: Any) -> bytes:
    """One field, unambiguously: a tag, then a length-prefixed body (None: the tag only)."""
    if value is None:
        return b"n"
    if isinstance(value, bytes):
        return b"b%d:" % len(value) + value
    if isinstance(value, str):
        body = value.encode()
        return b"s%d:" % len(body) + body
    if isinstance(value, datetime):  # microseconds since the epoch, as Avro stores it
        return b"t%d;" % ((_utc(value) - _EPOCH) // _MICROSECOND)
    if isinstance(value, int):
        return b"i%d;" % value
    if isinstance(value, list):  # header names or values
        return b"l%d:" % len(value) + b"".join(_frame(item) for item in value)
    raise TypeError(f"audit field of type {type(value).__name__} cannot be hashed")


def _reference_v2(record: AuditRecord) -> bytes:
    """What version 2 hashes, spelled generically (`_hash_v2` writes the same bytes)."""
    return _V2_PREFIX + b"".join(_frame(record.get(name)) for name in V2_FIELDS)


def _s(text: str | None) -> bytes:
    if text is None:
        return b"n"
    body = text.encode()
    return b"s%d:%s" % (len(body), body)


def _b(data: bytes | None) -> bytes:
    return b"n" if data is None else b"b%d:%s" % (len(data), data)


def _t(moment: datetime) -> bytes:
    return b"t%d;" % ((_utc(moment) - _EPOCH) // _MICROSECOND)


def _hash_v2(r: AuditRecord) -> str:
    """SHA-256 of `_reference_v2`, built field by field with the types version 2 stores
    (the generic `_frame` was a fifth of the sink's CPU time)."""
    try:
        names, values = r["headerNames"], r["headerValues"]
        timestamp = r["timestamp"]
        payload = b"".join(
            (
                _V2_PREFIX,
                b"i%d;s%d:%si%d;i%d;" % (r["hashVersion"], len(t := r["topic"].encode()), t,
                                        r["partition"], r["offset"]),
                b"n" if timestamp is None else b"i%d;" % timestamp,
                _b(r["key"]),
                b"l%d:" % len(names),
                b"".join([_s(name) for name in names]),
                b"l%d:" % len(values),
                b"".join([_b(value) for value in values]),
                _b(r["value"]),
                _s(r["id"]), _s(r["type"]), _s(r["source"]), _s(r["subject"]), _t(r["time"]),
                _s(r["vcenterUuid"]), _s(r["entity"]), _s(r["entityName"]), _s(r["event"]),
                _t(r["recordedAt"]), _s(r["prevHash"]),
            )
        )  # fmt: skip
    except (KeyError, TypeError, AttributeError):  # not the shape the sink writes
        payload = _reference_v2(r)
    return hashlib.sha256(payload).hexdigest()


def _hash_v3(body: bytes) -> str:
    digest = V3_START.copy()
    digest.update(body)
    return digest.hexdigest()


def record_hash(record: AuditRecord) -> str:
    """The hash a record should carry, by its `hashVersion` (absent: 1)."""
    version = record.get("hashVersion") or 1
    if version == 3:
        return _hash_v3(encode_body(record))
    if version == 2:
        return _hash_v2(record)
    if version == 1:
        return _hash_v1(record)
    raise UnknownHashVersion(f"hash version {version} is unknown to this release")


UNPARSED: Any = object()  # `data` not given: parse the value if it is needed


def _entity(
    key: bytes | None, view: CloudEventView, data: Any = UNPARSED
) -> tuple[str, str | None, str | None]:
    """(vCenter uuid, `<Type>:<moref>`, entity name) from the record key and event data."""
    vcenter, entity = split_key(key)
    name = None
    if entity:
        if data is UNPARSED:
            try:
                data = view.data()
            except orjson.JSONDecodeError:
                data = None
        name = entity_name(entity, data)
    return vcenter, entity, name


@functools.lru_cache(maxsize=4096)
def split_key(key: bytes | None) -> tuple[str, str | None]:
    """(vCenter uuid, `<Type>:<moref>` or None) of a record key `<uuid>/<Type>:<moref>`
    (cached: a topic's keys are its entities, they repeat)."""
    text = key.decode(errors="replace") if key else ""
    vcenter, _, entity = text.partition("/")
    return vcenter, entity or None


def entity_name(entity: str, data: Any) -> str | None:
    """The name the event data gives the key's entity, if it names it."""
    if isinstance(data, dict):
        for field in ENTITY_FIELDS:
            ref = data.get(field)
            moref = ref.get(field) if isinstance(ref, dict) else None
            if isinstance(moref, dict) and f"{moref.get('Type')}:{moref.get('Value')}" == entity:
                return ref.get("Name")  # type: ignore[union-attr,no-any-return]
    return None


class Readable(Protocol):
    """A record with its CloudEvent view: a sink's `SinkEvent`, a replay's `ReplayItem`."""

    @property
    def record(self) -> KafkaRecord: ...

    @property
    def view(self) -> CloudEventView: ...


def audit_record(
    item: Readable,
    recorded_at: datetime,
    attributes: dict[str, str] | None = None,
    time: datetime | None = None,
    data: Any = UNPARSED,
) -> AuditRecord:
    """The record for a Kafka record (version 2), without `prevHash`/`hash` (see `chain`).

    Reads only the `ce_*` headers (and the data for the entity's name): the runtime has
    checked the record (`CloudEventView.check`), so `time` is there and parses. A caller
    that read them already passes them (the view's `attributes`, `ce_time` parsed, the
    value parsed), so nothing is read twice."""
    record, view = item.record, item.view
    if attributes is None:
        attributes = view.attributes
    vcenter, entity, entity_name = _entity(record.key, view, data)
    assert record.topic is not None and record.partition is not None
    assert record.offset is not None
    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "hashVersion": HASH_VERSION,
        "timestamp": record.timestamp_ms,
        "key": record.key,
        "headerNames": [name for name, _ in record.headers],
        "headerValues": [value for _, value in record.headers],
        "value": record.value,
        "id": attributes.get("id", ""),
        "type": attributes.get("type", ""),
        "source": attributes.get("source", ""),
        "subject": attributes.get("subject"),
        "time": _utc(time or view.time()),
        "vcenterUuid": vcenter,
        "entity": entity,
        "entityName": entity_name,
        "event": "",
        "recordedAt": recorded_at,
    }


def chain(records: Iterable[AuditRecord], prev_hash: str) -> Iterator[AuditRecord]:
    """The records, in order, each with `prevHash` and `hash` set (in place)."""
    for record, _ in chain_encoded(records, prev_hash):
        yield record


def chain_encoded(
    records: Iterable[AuditRecord], prev_hash: str
) -> Iterator[tuple[AuditRecord, bytes]]:
    """`chain`, with each record's Avro binary encoding (all of it, `hash` included)."""
    for record in records:
        record["prevHash"] = prev_hash
        if record.get("hashVersion") == 3:
            body = encode_body(record)
            record["hash"] = prev_hash = _hash_v3(body)
        else:  # an older version: only tests write those now
            record["hash"] = prev_hash = record_hash(record)
            body = encode_body(record)
        yield record, body + encode_hash(prev_hash)


# A record encoded up to its `prevHash` (`encoding.encode_head`), with what places it:
# (offset, its `time` in microseconds since the epoch, vCenter uuid, the encoding). A
# plain tuple: a NamedTuple's constructor is Python code, a measurable share per record.
Head = tuple[int, int, str, bytes]


def head_of(record: AuditRecord) -> Head:
    """A record dict as a `Head` (without `prevHash`/`hash`)."""
    return (
        record["offset"],
        micros(record["time"]),
        record["vcenterUuid"],
        encode_record_head(record),
    )


MAX_HEADER_LAYOUTS = 4096  # header layouts whose encoding an `AuditEncoder` keeps by id
MAX_KEYS = 4096  # record keys whose encoding an `AuditEncoder` keeps
_HASH_VERSION = long(HASH_VERSION)
_EVENT = string("")  # `event`: empty since version 2 (the event is the headers + value)


class LayoutParts:
    """A header layout's share of its records' encoding: the header arrays cut around
    the values of `ce_id` and `ce_time` (`encoding.headers_around`), where those two
    stand, and `type`, `source` and `subject` encoded (the same for every record of a
    layout: they are headers other than the id and the time)."""

    __slots__ = ("after", "before", "between", "described", "id_at", "id_first", "time_at")

    def __init__(self, headers: list[tuple[str, bytes | None]], attributes: dict[str, str]):
        names = [name for name, _ in headers]
        values = [b"" if value is None else value for _, value in headers]  # as KafkaRecord
        self.id_at, self.time_at = names.index("ce_id"), names.index("ce_time")
        self.id_first = self.id_at < self.time_at
        first_at, second_at = sorted((self.id_at, self.time_at))
        self.before, self.between, self.after = headers_around(names, values, first_at, second_at)
        self.described = b"".join(
            (
                string(attributes.get("type", "")),
                string(attributes.get("source", "")),
                encode_optional(attributes.get("subject")),
            )
        )


# a record key's share of the encoding: the `key` field, vCenter uuid, the `vcenterUuid`
# and `entity` fields, the entity (`<Type>:<moref>`) whose name the data may give
_Key = tuple[bytes, str, bytes, str | None]


def batch_tail(now: datetime) -> bytes:
    """`event` and `recordedAt` encoded: the same for every record of a batch."""
    return _EVENT + moment(now)


class AuditEncoder:
    """Audit records encoded up to their `prevHash` (`Head`s) straight from the
    consumer's message and what a check read of it, with no record dict: the fields of
    `audit_record`, the same bytes (tests/sinks/test_audit_record.py and
    tests/replay/test_batch.py hold both callers to the record dict's bytes). The audit
    sink and a replay into audit files both encode with it.

    What repeats is encoded once: per header layout (`LayoutParts`: a replay keeps them
    on its `Layout`, the sink asks `parts`), per record key, per batch (`batch_tail`);
    a record costs its own fields and one join."""

    def __init__(self, layouts: int = MAX_HEADER_LAYOUTS, keys: int = MAX_KEYS) -> None:
        self._layouts_limit, self._keys_limit = layouts, keys
        self._layouts: dict[int, tuple[object, LayoutParts]] = {}
        self._keys: dict[bytes | None, _Key] = {}

    def parts(
        self, layout: object, headers: list[tuple[str, bytes | None]], attributes: dict[str, str]
    ) -> LayoutParts:
        """The parts of `layout` (any object the check returns for every record of that
        layout, kept by its id): built from the first record's headers and attributes."""
        known = self._layouts.get(id(layout))
        if known is None or known[0] is not layout:  # an id can be reused once freed
            if len(self._layouts) >= self._layouts_limit:
                self._layouts.clear()
            known = self._layouts[id(layout)] = (layout, LayoutParts(headers, attributes))
        return known[1]

    def encode(
        self, message: Message, parts: LayoutParts, when: datetime, data: Any, tail: bytes
    ) -> Head:
        """`message`'s record, of the layout `parts` describe, checked: its `ce_id` is
        UTF-8 and not empty (so its header value is the `id` field's bytes), `when` is
        its `ce_time` parsed (with a zone), `data` its value parsed; `tail` is
        `batch_tail` of the batch.

        One join of the record's pieces, each length from `LENGTHS` (no intermediate
        `raw` concatenation, no call per field): `encode_head_parts` is the general
        path, taken when a length is past the table, and writes the same bytes
        (tests/sinks/test_audit_record.py holds both to the record dict's)."""
        key = message.key()
        known = self._keys.get(key)
        if known is None:
            known = self._key(key)
        key_field, vcenter, placed, entity = known
        headers = message.headers()
        id_value: bytes = headers[parts.id_at][1]
        time_value: bytes = headers[parts.time_at][1]
        kind, timestamp = message.timestamp()  # kind 0: none (`ConsumedRecord.timestamp_ms`)
        offset: int = message.offset()  # type: ignore[assignment]
        topic: str = message.topic()  # type: ignore[assignment]
        value: bytes = message.value()  # type: ignore[assignment]
        delta = when - _EPOCH  # `encoding.micros`, inline: `when` has a zone (checked)
        time_micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        name = entity_name(entity, data) if entity else None
        first, second = (id_value, time_value) if parts.id_first else (time_value, id_value)
        lengths = LENGTHS
        try:
            encoded = b"".join(
                (
                    cached_string(topic), long(message.partition()),  # type: ignore[arg-type]
                    long(offset), _HASH_VERSION,
                    SOME + long(timestamp) if kind else NULL,
                    key_field,
                    parts.before, lengths[len(first)], first,
                    parts.between, lengths[len(second)], second, parts.after,
                    SOME, lengths[len(value)], value,
                    lengths[len(id_value)], id_value,
                    parts.described,
                    long(time_micros),
                    placed,
                    NULL if name is None else SOME + string(name),
                    tail,
                )
            )  # fmt: skip
        except IndexError:  # a length past the table
            encoded = encode_head_parts(
                topic, message.partition(), offset, _HASH_VERSION,  # type: ignore[arg-type]
                timestamp if kind else None, key_field,
                (parts.before, raw(first), parts.between, raw(second), parts.after),
                value, raw(id_value), parts.described, time_micros, placed, name, tail,
            )  # fmt: skip
        return offset, time_micros, vcenter, encoded

    def _key(self, key: bytes | None) -> _Key:
        vcenter, entity = split_key(key)
        if len(self._keys) >= self._keys_limit:
            self._keys.clear()
        known = self._keys[key] = (
            encode_optional_bytes(key),
            vcenter,
            string(vcenter) + encode_optional(entity),
            entity,
        )
        return known


def event_json(record: AuditRecord) -> bytes:
    """The stored event as a structured-mode CloudEvent: for version 2 built from the
    stored headers and value (data spliced in as Kafka held it), for version 1 the JSON
    that was stored."""
    if (record.get("hashVersion") or 1) >= 2:
        headers = kafka_headers(record)
        stored = KafkaRecord(record.get("value"), record.get("key"), headers)
        return CloudEventView(stored).http_structured()[1]
    return str(record["event"]).encode()


def kafka_headers(record: AuditRecord) -> list[tuple[str, bytes]]:
    """The record's Kafka headers as (name, value) pairs, in order."""
    names, values = record.get("headerNames") or [], record.get("headerValues") or []
    return list(zip(names, values, strict=True))
