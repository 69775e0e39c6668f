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
| `vcstream.error.truncated` | what was cut to fit the dead-letter topic: `value`, `key`, |
|  | `headers` (comma-separated); absent when the record is whole |
| `vcstream.error.value.size` / `.value.sha256` | the original value's length and SHA-256 |
| `vcstream.error.key.size` / `.key.sha256` | the same for a cut key |
| `vcstream.error.headers.dropped` | how many original headers were left out |

A dead letter always fits its topic. The original value (and, if need be, key and
headers) is cut to what a record of `max_bytes` holds after the error headers, whatever
the producer's compression does to it; the cut is named in the headers above and the
hash identifies the original, which still sits in its source topic at the coordinates
given. So an oversize record (a value near the input topic's own limit, or a topic with
a raised `max.message.bytes`) is dead-lettered like any other instead of blocking its
partition. The streams worker and the sinks call the same function:

    dead_letter(record, stage="streams:alarms", reason="oversize", error=exc,
                max_bytes=DEFAULT_MAX_BYTES)  # -> a KafkaRecord that fits

`fit(record, max_bytes)` does the cutting alone, for a record that already carries its
error headers; `record_size` is the bound it keeps to.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Literal

from schemas.record import KafkaRecord

PREFIX = "vcstream.error."
MAX_DATA_BYTES = 1024
MAX_MESSAGE_BYTES = 4096
MAX_FIELD_BYTES = 1024  # any other error header (a URL, a stage name)

# The dead-letter topic's `max.message.bytes`, as vcstream creates it (vcstream.topics)
# and its producers are configured (`message.max.bytes`): 1 MiB, Kafka's default.
DEFAULT_MAX_BYTES = 1_048_576
# The least limit whose records always fit: the error headers alone take up to ~9 KiB.
MIN_MAX_BYTES = 32_768
# Kafka's record-batch header, and a bound on one record's own framing (varints).
_BATCH_OVERHEAD = 61
_RECORD_OVERHEAD = 40
_HEADER_OVERHEAD = 10
# Original headers a fitted record keeps at most, and the longest key it keeps.
_KEPT_HEADERS_SHARE = 8  # 1/8 of the room
_KEPT_KEY_BYTES = 1024
# the headers that describe a cut value: two, and the `truncated` list
_NOTES_BYTES = 3 * _HEADER_OVERHEAD + 200

Reason = Literal["poison", "processing", "delivery", "oversize"]


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
    max_bytes: int | None = DEFAULT_MAX_BYTES,
) -> KafkaRecord:
    """The record to write to the dead-letter topic for `record`, cut to fit a topic
    whose `max.message.bytes` is `max_bytes` (None: whole, whatever its size)."""
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
        limit = {"exception.message": MAX_MESSAGE_BYTES, "data": MAX_DATA_BYTES}
        extra.append((PREFIX + name, raw[: limit.get(name, MAX_FIELD_BYTES)]))
    # a record dead-lettered twice keeps only the newest error context
    kept = [(k, v) for k, v in record.headers if not k.startswith(PREFIX)]
    letter = KafkaRecord(record.value, record.key, [*kept, *extra])
    return letter if max_bytes is None else fit(letter, max_bytes)


def record_size(record: KafkaRecord) -> int:
    """An upper bound of the bytes `record` takes alone in a record batch, uncompressed."""
    size = _BATCH_OVERHEAD + _RECORD_OVERHEAD + len(record.value or b"") + len(record.key or b"")
    for name, value in record.headers:
        size += _HEADER_OVERHEAD + len(name.encode()) + len(value)
    return size


def usable_bytes(max_bytes: int) -> int:
    """What a record may take before compression in a topic of `max_bytes`.

    Compression can grow data that does not compress (a poison record of random bytes):
    snappy by up to 1/6, lz4 and zstd by well under 1%, so a fifth is kept in reserve."""
    if max_bytes < MIN_MAX_BYTES:
        raise ValueError(f"max_bytes {max_bytes}: a dead letter needs at least {MIN_MAX_BYTES}")
    return max_bytes - max_bytes // 5


def fit(record: KafkaRecord, max_bytes: int) -> KafkaRecord:
    """`record` if it fits a topic of `max_bytes`; otherwise a copy cut to fit, saying so.

    The error headers (`vcstream.error.*`, as `dead_letter` bounds them) are always kept. What else
    does not fit is cut: original headers past an eighth of the room and a key past
    1 KiB when the value alone cannot make room, then the value; each cut is named in
    `vcstream.error.truncated`, with the size and SHA-256 of what was cut."""
    room = usable_bytes(max_bytes)
    if record_size(record) <= room:
        return record
    errors = [(k, v[:MAX_MESSAGE_BYTES]) for k, v in record.headers if k.startswith(PREFIX)]
    originals = [(k, v) for k, v in record.headers if not k.startswith(PREFIX)]
    value, key = record.value or b"", record.key
    cut: list[str] = []
    notes: list[tuple[str, bytes]] = []
    if record_size(KafkaRecord(b"", key, [*originals, *errors])) + _NOTES_BYTES > room:
        allowance = room // _KEPT_HEADERS_SHARE
        kept: list[tuple[str, bytes]] = []
        for name, header in originals:
            allowance -= _HEADER_OVERHEAD + len(name.encode()) + len(header)
            if allowance < 0:
                break
            kept.append((name, header))
        if len(kept) < len(originals):
            cut.append("headers")
            notes.append((PREFIX + "headers.dropped", str(len(originals) - len(kept)).encode()))
            originals = kept
        if key is not None and len(key) > _KEPT_KEY_BYTES:
            cut.append("key")
            notes += _described("key", key)
            key = key[:_KEPT_KEY_BYTES]
    left = room - _NOTES_BYTES - record_size(KafkaRecord(b"", key, [*originals, *errors, *notes]))
    if len(value) > left:
        cut.insert(0, "value")
        notes += _described("value", value)
        value = value[: max(0, left)]
    notes.append((PREFIX + "truncated", ",".join(cut).encode()))
    return KafkaRecord(value, key, [*originals, *errors, *notes])


def _described(part: str, data: bytes) -> list[tuple[str, bytes]]:
    return [
        (f"{PREFIX}{part}.size", str(len(data)).encode()),
        (f"{PREFIX}{part}.sha256", hashlib.sha256(data).hexdigest().encode()),
    ]


def error_context(record: KafkaRecord) -> dict[str, str]:
    """The error headers of a dead-lettered record, without the prefix."""
    return {
        name.removeprefix(PREFIX): value.decode("utf-8", errors="replace")
        for name, value in record.headers
        if name.startswith(PREFIX)
    }
