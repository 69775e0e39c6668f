"""vSphere-specific CloudEvent attributes: type names, ids, record keys (VEBA v0.8 rules)."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

TYPE_PREFIX = "com.vmware.vsphere."
TYPE_SUFFIX = ".v0"
# The namespace of every vcstream event id; fixed forever, or ids change meaning.
ID_NAMESPACE = uuid.UUID("6f1c2b58-0d6e-5a0b-9a57-7663737472ea")
_NAMESPACE_BYTES = ID_NAMESPACE.bytes

EventClassKind = Literal["event", "eventex", "extendedevent"]

# Events vcstream itself makes, under VEBA's prefix so a Trigger on `com.vmware.vsphere.*`
# sees them; the data of each is described where it is made (streams/processors/).
VCSTREAM_TYPE_PREFIX = TYPE_PREFIX + "vcstream."
ALARM_STORM_TYPE = VCSTREAM_TYPE_PREFIX + "AlarmStorm.v0"
# The extension a stream processor sets on an event it keeps from the alerting routes
# (the value says why: `storm`, `maintenance`); the audit route still takes it, marked.
SUPPRESSED_EXTENSION = "suppressed"


@dataclass(frozen=True, slots=True)
class VCenterIdentity:
    """What the codec needs to know about the vCenter an event came from."""

    instance_uuid: str  # about.instanceUuid: stable across renames and re-IPs
    source: str  # the SDK URL as configured, normalised: https://<host>[:port]/sdk
    api_version: str  # about.apiVersion, the `vsphereapiversion` extension
    name: str = ""  # the configured label, for metrics and logs only


def event_class_kind(class_name: str) -> EventClassKind:
    if class_name == "EventEx":
        return "eventex"
    if class_name == "ExtendedEvent":
        return "extendedevent"
    return "event"


def event_type(class_name: str, event_type_id: str | None = None) -> str:
    """`com.vmware.vsphere.<EventClass>.v0`; EventEx/ExtendedEvent use their eventTypeId."""
    name = class_name
    if event_class_kind(class_name) != "event" and event_type_id:
        name = event_type_id
    return f"{TYPE_PREFIX}{name}{TYPE_SUFFIX}"


def as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def event_id(instance_uuid: str, key: int, created_time: datetime) -> str:
    """UUIDv5 of vCenter + key + createdTime: keys are 32-bit and wrap, the triple does not."""
    stamp = as_utc(created_time).isoformat(timespec="microseconds")
    return uuid5(f"{instance_uuid}/{key}/{stamp}")


def uuid5(name: str) -> str:
    """`str(uuid.uuid5(ID_NAMESPACE, name))`, without the UUID object (the codec's hot path)."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def derived_id(input_id: str, step: str, index: int = 0) -> str:
    """The id of an event a processing step made from another: reprocessing gives the same."""
    return uuid5(f"{input_id}/{step}/{index}")


# Entity references in event data, most specific first: the record key follows the
# thing the event is about, so all events of one VM stay in order in one partition.
# Each is `{"Name": ..., "<Kind>": {"Type", "Value"}}`; the kind's name differs from the
# field's for some (`Ds` holds `Datastore`, `Net` holds `Network`). `Entity` is what
# alarm events are about; EventEx/ExtendedEvent name theirs in ObjectType/ObjectId.
ENTITY_FIELDS = ("Vm", "Host", "Ds", "Net", "Dvs", "Entity")
CONTAINER_FIELDS = ("ComputeResource", "Datacenter")


def record_key(instance_uuid: str, data: dict[str, Any] | None) -> bytes:
    """`<vcenter uuid>/<Type>:<moref>` of the event's entity, or the vCenter alone."""
    if data:
        for name in ENTITY_FIELDS:
            found = _moref_in(data.get(name))
            if found:
                return f"{instance_uuid}/{found}".encode()
        object_id = data.get("ObjectId")
        if isinstance(object_id, str) and object_id:
            object_type = data.get("ObjectType") or "object"
            return f"{instance_uuid}/{object_type}:{object_id}".encode()
        for name in CONTAINER_FIELDS:
            found = _moref_in(data.get(name))
            if found:
                return f"{instance_uuid}/{found}".encode()
    return instance_uuid.encode()


def _moref_in(argument: Any) -> str | None:
    """`Type:Value` of the MoRef inside an entity event argument, if there is one."""
    if not isinstance(argument, dict):
        return None
    for name, value in argument.items():
        if name != "Name" and isinstance(value, dict) and value.get("Value"):
            return f"{value.get('Type', '')}:{value['Value']}"
    return None
