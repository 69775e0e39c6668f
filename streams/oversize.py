"""An output Kafka will not take for its size, dead-lettered in a form that fits.

aiokafka refuses a record larger than the producer's `max_request_size` as it is sent
(`MessageSizeTooLargeError`); a topic whose `max.message.bytes` is lower would refuse the
whole batch such a record is in, so the worker does not send it (`over_limit`). Raised
out of the agent, the error crashed it: Faust restarted the agent, the commit stayed
below the record, the records behind it were re-emitted after a restart, and SIGTERM
never completed. Instead the record it came from is dead-lettered once
(`schemas.deadletter.dead_letter`, stage `streams:send`, reason `delivery`), its value
cut to what fits and headers saying so, and the event's other outputs go on as usual;
its offset is committed once the dead letter is written.

This stays small on purpose: `schemas.deadletter` is to gain a builder of dead letters
that always fit, which will replace `fitting` here.
"""

from __future__ import annotations

import hashlib

from aiokafka.errors import MessageSizeTooLargeError
from faust.exceptions import ProducerSendError

from schemas.deadletter import PREFIX, dead_letter
from schemas.record import KafkaRecord

STAGE = "streams:send"
# the most of the original value a dead letter keeps: enough to recognise the event
KEPT_VALUE_BYTES = 64 * 1024
# room for the record batch's and the request's own framing around one record
FRAMING_BYTES = 1024


def too_large(error: BaseException) -> BaseException | None:
    """aiokafka's size error if a send failed because the record is larger than Kafka
    takes (Faust raises it as the cause of its ProducerSendError), else None."""
    cause = error.__cause__ if isinstance(error, ProducerSendError) else error
    return cause if isinstance(cause, MessageSizeTooLargeError) else None


def over_limit(record: KafkaRecord, topic: str, limit: int) -> MessageSizeTooLargeError:
    """The error of a record too large for its topic's `max.message.bytes`, not sent."""
    return MessageSizeTooLargeError(
        f"{size_of(record)} bytes, more than {topic} takes (max.message.bytes {limit})"
    )


def size_of(record: KafkaRecord) -> int:
    headers = sum(len(name) + len(value) for name, value in record.headers)
    return len(record.key or b"") + len(record.value or b"") + headers


def fitting(record: KafkaRecord, dest: str, error: BaseException, limit: int) -> KafkaRecord:
    """The dead letter of `record`, which could not be written to `dest`, within `limit`
    bytes: the value cut (its size and SHA-256 in headers), and if the headers alone are
    too large, only the CloudEvent and error headers kept."""
    value = record.value or b""
    dead = dead_letter(record, stage=STAGE, reason="delivery", error=error, dest=dest)
    about = [
        (PREFIX + "value.bytes", str(len(value)).encode()),
        (PREFIX + "value.sha256", hashlib.sha256(value).hexdigest().encode()),
    ]
    headers = [*dead.headers, *about]
    room = limit - FRAMING_BYTES - len(record.key or b"")
    if size_of(KafkaRecord(b"", None, headers)) > room // 2:
        headers = [(n, v) for n, v in headers if n.startswith((PREFIX, "ce_", "content-type"))]
    cut = PREFIX + "value.truncated"  # its value: the bytes kept, at most 20 digits
    room -= size_of(KafkaRecord(b"", None, headers)) + len(cut) + 20
    kept = max(0, min(KEPT_VALUE_BYTES, room))
    if kept < len(value):
        headers.append((cut, str(kept).encode()))
    return KafkaRecord(value[:kept], record.key, headers)
