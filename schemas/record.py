"""A Kafka record as every vcstream component sees it, whatever client produced it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from schemas.cloudevent import CloudEventView


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
