"""VMware Horizon audit events as CloudEvents, in VEBA v0.8's HorizonSource form.

- `type` = `com.vmware.horizon.<event type in lower case>.v0`
  (`VLSI_USERLOGGEDIN_REST` → `com.vmware.horizon.vlsi_userloggedin_rest.v0`);
- `source` = the Connection Server's URL as configured, normalised (https://<host>[:port]);
- `id` = a UUIDv5 of source + the event's `id`: Horizon's ids are unique within one
  server's database only, so VEBA's bare id would collide across servers (the same
  reasoning as schemas.vsphere.event_id for vCenter);
- `time` = the event's `time` (ms since the epoch); data = the event exactly as Horizon
  returned it (snake_case), `datacontenttype` application/json.

Records go to the raw topic beside vCenter's, keyed by the server (`record_key`), so one
server's events stay in order in one partition.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from cloudevents.core.v1.event import CloudEvent

from schemas.codec import CONTENT_TYPE, encode
from schemas.record import KafkaRecord
from schemas.vsphere import uuid5

TYPE_PREFIX = "com.vmware.horizon."
TYPE_SUFFIX = ".v0"


def horizon_type(event_type: str) -> str:
    return f"{TYPE_PREFIX}{event_type.lower()}{TYPE_SUFFIX}"


def horizon_event_id(source: str, event_id: int) -> str:
    """Deterministic across re-reads, unique across servers."""
    return uuid5(f"horizon/{source}/{event_id}")


def event_time(time_ms: int) -> datetime:
    return datetime.fromtimestamp(time_ms / 1000, UTC)


def horizon_cloudevent(data: dict[str, Any], source: str) -> CloudEvent:
    """A Horizon audit event (as its REST API returns it) as a VEBA v0.8 CloudEvent."""
    try:
        event_id = int(data["id"])
        time_ms = int(data["time"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(
            f"Horizon event without integer id and time: {data.get('id')!r}, {data.get('time')!r}"
        ) from None
    kind = data.get("type")
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"Horizon event {event_id} has no type")
    return CloudEvent(
        attributes={
            "id": horizon_event_id(source, event_id),
            "source": source,
            "type": horizon_type(kind),
            # the SDK fills `time` with "now" when absent: always the event's own time
            "time": event_time(time_ms),
            "datacontenttype": CONTENT_TYPE,
        },
        data=data,
    )


def record_key(source: str) -> bytes:
    """`horizon:<host>[:port]`: one key per server.

    Record keys across the pipeline read `<source id>/<entity>` (the audit store files
    and indexes records by the part before the first `/`), so the key holds no `/`:
    a URL would make every server `https:`.
    """
    return f"horizon:{urlsplit(source).netloc}".encode()


def encode_horizon(data: dict[str, Any], source: str) -> KafkaRecord:
    """A Horizon audit event as its raw-topic record, keyed by the server."""
    return encode(horizon_cloudevent(data, source), record_key(source))
