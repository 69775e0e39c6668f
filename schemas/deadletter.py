"""One dead-letter format for every stage (streams and sinks alike).

A dead-lettered record is the original record, unchanged (value, key, headers), plus
headers that say what happened. The names follow Kafka Connect's
`__connect.errors.*` context headers and Knative's error extensions, under one prefix:

| header | value |
|---|---|
| `vcstream.error.stage` | who gave up: `streams:<processor>`, `sink:<name>`, `replay` |
| `vcstream.error.reason` | `poison` (undecodable), `processing` (a processor raised), |
|  | `delivery` (retries exhausted, or an error not worth retrying) |
| `vcstream.error.topic` / `.partition` / `.offset` | where the original record was read |
| `vcstream.error.exception.class` / `.exception.message` | the error, if one was raised |
| `vcstream.error.status` | the target's status code (HTTP), for delivery errors |
| `vcstream.error.dest` | the target URL or name (Knative's `knativeerrordest`) |
| `vcstream.error.data` | the target's response body, at most 1,024 bytes (`knativeerrordata`) |
| `vcstream.error.attempts` | how many deliveries were tried |
| `vcstream.error.time` | when it was dead-lettered, RFC 3339 UTC |
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from schemas.record import KafkaRecord

PREFIX = "vcstream.error."
MAX_DATA_BYTES = 1024
MAX_MESSAGE_BYTES = 4096

Reason = Literal["poison", "processing", "delivery"]


def dead_letter(
    record: KafkaRecord,
    *,
    stage: str,
    reason: Reason,
    error: BaseException | None = None,
    message: str | None = None,
    status: int | None = None,
    dest: str | None = None,
    data: bytes | None = None,
    attempts: int | None = None,
) -> KafkaRecord:
    """The record to write to the dead-letter topic for `record`."""
    fields: dict[str, str | bytes | None] = {
        "stage": stage,
        "reason": reason,
        "topic": record.topic,
        "partition": None if record.partition is None else str(record.partition),
        "offset": None if record.offset is None else str(record.offset),
        "exception.class": type(error).__name__ if error is not None else None,
        "exception.message": message if message is not None else (str(error) if error else None),
        "status": None if status is None else str(status),
        "dest": dest,
        "data": data[:MAX_DATA_BYTES] if data is not None else None,
        "attempts": None if attempts is None else str(attempts),
        "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    extra: list[tuple[str, bytes]] = []
    for name, value in fields.items():
        if value is None:
            continue
        raw = value if isinstance(value, bytes) else value.encode("utf-8", errors="replace")
        if name == "exception.message":
            raw = raw[:MAX_MESSAGE_BYTES]
        extra.append((PREFIX + name, raw))
    # a record dead-lettered twice keeps only the newest error context
    kept = [(k, v) for k, v in record.headers if not k.startswith(PREFIX)]
    return KafkaRecord(record.value, record.key, [*kept, *extra])


def error_context(record: KafkaRecord) -> dict[str, str]:
    """The error headers of a dead-lettered record, without the prefix."""
    return {
        name.removeprefix(PREFIX): value.decode("utf-8", errors="replace")
        for name, value in record.headers
        if name.startswith(PREFIX)
    }
