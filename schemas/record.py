"""A Kafka record as every vcstream component sees it, whatever client produced it.

`KafkaRecord` holds its fields; `ConsumedRecord` is the same record read from the
confluent-kafka message it came in, field by field when asked (the sink runtime's
records: building a `KafkaRecord` per message was ~19% of the audit sink's CPU).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import methodcaller
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from schemas.cloudevent import CloudEventView


class Message(Protocol):
    """What is read of a confluent_kafka.Message (tests stand records in for it)."""

    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def timestamp(self) -> tuple[int, int]: ...
    def headers(self) -> Any: ...  # list[tuple[str, bytes | None]] | None
    def value(self) -> bytes | None: ...
    def key(self) -> bytes | None: ...
    def topic(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    value: bytes | None
    key: bytes | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    timestamp_ms: int | None = None

    def header(self, name: str) -> bytes | None:
        """The last value of a header (Kafka allows repeats; the last one wins)."""
        found = None
        for key, value in self.headers:
            if key == name:
                found = value
        return found

    def cloudevent(self) -> CloudEventView:
        """The record's CloudEvent read lazily from its bytes (`schemas.cloudevent`)."""
        from schemas.cloudevent import CloudEventView  # it builds on this module

        return CloudEventView(self)

    def with_headers(self, extra: list[tuple[str, bytes]]) -> KafkaRecord:
        return KafkaRecord(
            self.value,
            self.key,
            [*self.headers, *extra],
            self.topic,
            self.partition,
            self.offset,
            self.timestamp_ms,
        )

    @classmethod
    def from_confluent(cls, message: object) -> KafkaRecord:
        """From a confluent_kafka.Message."""
        headers = message.headers() or []  # type: ignore[attr-defined]
        ts_type, ts = message.timestamp()  # type: ignore[attr-defined]
        return cls(
            value=message.value(),  # type: ignore[attr-defined]
            key=message.key(),  # type: ignore[attr-defined]
            headers=[(k, v if v is not None else b"") for k, v in headers],
            topic=message.topic(),  # type: ignore[attr-defined]
            partition=message.partition(),  # type: ignore[attr-defined]
            offset=message.offset(),  # type: ignore[attr-defined]
            timestamp_ms=ts if ts_type else None,
        )


def _read(accessor: str) -> Any:
    """A `ConsumedRecord` field: the message's accessor of that name, called when read."""
    call = methodcaller(accessor)
    return property(lambda record: call(record._message))


class ConsumedRecord(KafkaRecord):
    """A `KafkaRecord` read from its confluent_kafka.Message on demand, never copied.

    `from_confluent` sets seven fields of a frozen dataclass (each through
    `object.__setattr__`) and rebuilds the header list for every message; here
    construction keeps the message, a field is the message's own accessor, and the
    headers are confluent-kafka's list itself (which the message keeps once converted),
    copied only when a header has no value (None there, b"" here), once, when first
    asked. Like every `KafkaRecord`, it is never changed; nor is the list it returns.
    """

    __slots__ = ("_headers", "_message")
    _message: Any  # a confluent_kafka.Message
    _headers: list[tuple[str, bytes]] | None

    def __init__(self, message: Any) -> None:
        object.__setattr__(self, "_message", message)
        object.__setattr__(self, "_headers", None)

    @property
    def message(self) -> Any:
        """The confluent_kafka.Message itself: a stage that reads every field of every
        record (the audit sink) calls its accessors without a property per field."""
        return self._message

    value = _read("value")
    key = _read("key")
    topic = _read("topic")
    partition = _read("partition")
    offset = _read("offset")

    @property
    def headers(self) -> list[tuple[str, bytes]]:
        headers: list[tuple[str, bytes]] | None = self._headers
        if headers is None:
            headers = self._message.headers() or []
            for _, value in headers:
                if value is None:
                    headers = [(k, b"" if v is None else v) for k, v in headers]
                    break
            object.__setattr__(self, "_headers", headers)
        return headers

    @property
    def timestamp_ms(self) -> int | None:
        kind, ms = self._message.timestamp()
        return ms if kind else None
