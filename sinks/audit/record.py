"""The audit record (`schemas/audit_record.avsc`) and its hash chain.

Every record carries `prevHash`, the hash of the record before it in the same Kafka
topic-partition, and `hash`, SHA-256 over `prevHash` and every other field in one
canonical JSON form. Changing, removing or reordering a stored record breaks the chain
at that point, which `sinks.audit.verify` reports. Both backends store exactly these
fields, so one function verifies both.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.formats.json import JSONFormat

from schemas.vsphere import ENTITY_FIELDS
from sinks.base import SinkEvent

GENESIS = "0" * 64
AuditRecord = dict[str, Any]
_FORMAT = JSONFormat()
# the fields the hash covers, in a fixed order (`hash` itself excluded)
HASHED_FIELDS = (
    "topic", "partition", "offset", "id", "type", "source", "subject", "time",
    "vcenterUuid", "entity", "entityName", "event", "recordedAt", "prevHash",
)  # fmt: skip


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        return _utc(value).isoformat(timespec="microseconds")
    return value


def record_hash(record: AuditRecord) -> str:
    payload = json.dumps(
        {name: _canonical(record.get(name)) for name in HASHED_FIELDS},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _entity(key: bytes | None, data: Any) -> tuple[str, str | None, str | None]:
    """(vCenter uuid, `<Type>:<moref>`, entity name) from the record key and event data."""
    text = key.decode(errors="replace") if key else ""
    vcenter, _, entity = text.partition("/")
    name = None
    if entity and isinstance(data, dict):
        for field in ENTITY_FIELDS:
            ref = data.get(field)
            moref = ref.get(field) if isinstance(ref, dict) else None
            if isinstance(moref, dict) and f"{moref.get('Type')}:{moref.get('Value')}" == entity:
                name = ref.get("Name")  # type: ignore[union-attr]
                break
    return vcenter, entity or None, name


def audit_record(item: SinkEvent, recorded_at: datetime) -> AuditRecord:
    """The record for an event, without `prevHash`/`hash` (see `chain`)."""
    event, record = item.event, item.record
    attributes = event.get_attributes()
    vcenter, entity, entity_name = _entity(record.key, event.get_data())
    time = attributes.get("time")
    if not isinstance(time, datetime):
        raise ValueError(f"event {event.get_id()} has no time")
    assert record.topic is not None and record.partition is not None
    assert record.offset is not None
    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "id": str(event.get_id()),
        "type": str(event.get_type()),
        "source": str(event.get_source()),
        "subject": attributes.get("subject"),
        "time": _utc(time),
        "vcenterUuid": vcenter,
        "entity": entity,
        "entityName": entity_name,
        "event": _FORMAT.write(event).decode(),
        "recordedAt": _utc(recorded_at),
    }


def chain(records: Iterable[AuditRecord], prev_hash: str) -> Iterator[AuditRecord]:
    """The records, in order, each with `prevHash` and `hash` set."""
    for record in records:
        linked = {**record, "prevHash": prev_hash}
        linked["hash"] = prev_hash = record_hash(linked)
        yield linked
