"""An output Kafka will not take for its size, dead-lettered in a form that fits.

aiokafka refuses a record larger than the producer's `max_request_size` as it is sent
(`MessageSizeTooLargeError`); a topic whose `max.message.bytes` is lower would refuse the
whole batch such a record is in, so the worker does not send it (`over_limit`). Raised
out of the agent, the error crashed it: Faust restarted the agent, the commit stayed
below the record, the records behind it were re-emitted after a restart, and SIGTERM
never completed. Instead the record it came from is dead-lettered once
(`schemas.deadletter.dead_letter`, stage `streams:send`, reason `oversize`), its value
cut to what fits and headers saying so, as the sinks cut theirs, and the event's other
outputs go on as usual; its offset is committed once the dead letter is written.

"""

from __future__ import annotations

from aiokafka.errors import MessageSizeTooLargeError
from faust.exceptions import ProducerSendError

from schemas.deadletter import MIN_MAX_BYTES, dead_letter
from schemas.record import KafkaRecord

STAGE = "streams:send"
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
    """The dead letter of `record`, which could not be written to `dest`, cut to fit a
    dead-letter topic that takes `limit` bytes (`schemas.deadletter.fit`: the value cut,
    its size and SHA-256 and what was cut named in headers), as every sink cuts them."""
    return dead_letter(
        record,
        stage=STAGE,
        reason="oversize",
        error=error,
        dest=dest,
        max_bytes=max(limit, MIN_MAX_BYTES),
    )
