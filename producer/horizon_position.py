"""Where the producer stands in one Horizon server's audit events, and its checkpoint.

Horizon can only be asked for events by time (ms), and several events share a
millisecond, so the position is the time of the newest event written plus the ids of
the events written at that time. The next read asks for events from that time on, and
drops those ids: nothing is read twice, and an event that arrives later with the same
millisecond is still taken.

The checkpoint (schemas/horizon_checkpoint.avsc) goes to the checkpoints topic under
`horizon/<source>`, in the same Kafka transaction as the events it follows. It is a
schema of its own rather than a change to the vCenter checkpoint: the two describe
different positions, and the vCenter schema stays exactly as released.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from producer.compacted import read_compacted
from schemas import avro
from schemas.avro import AvroError
from schemas.record import KafkaRecord
from vcstream.settings.kafka import KafkaSettings

SCHEMA = "horizon_checkpoint"


class CorruptHorizonCheckpoint(Exception):
    """The stored checkpoint cannot be read; resuming from a guess could lose events."""


@dataclass(frozen=True, slots=True)
class HorizonPosition:
    time_ms: int
    ids: frozenset[int] = frozenset()  # written, with time == time_ms

    def is_new(self, event: dict[str, Any]) -> bool:
        time_ms: int = event["time"]
        return time_ms > self.time_ms or (time_ms == self.time_ms and event["id"] not in self.ids)

    def after(self, events: list[dict[str, Any]]) -> HorizonPosition:
        """The position once `events` (new ones, oldest first) are written too."""
        position = self
        for event in events:
            if event["time"] > position.time_ms:
                position = HorizonPosition(event["time"], frozenset([event["id"]]))
            else:
                position = HorizonPosition(position.time_ms, position.ids | {event["id"]})
        return position


def checkpoint_key(source: str) -> bytes:
    """Never a vCenter's key (instance UUIDs) in the shared checkpoints topic."""
    return f"horizon/{source}".encode()


def encode_checkpoint(source: str, position: HorizonPosition) -> KafkaRecord:
    value = avro.encode(
        SCHEMA,
        {
            "source": source,
            "lastEventTimeMs": position.time_ms,
            "idsAtTime": sorted(position.ids),
            "updatedAt": datetime.now(UTC),
        },
    )
    return KafkaRecord(value=value, key=checkpoint_key(source))


def decode_checkpoint(payload: bytes) -> HorizonPosition:
    record = avro.decode(SCHEMA, payload)
    return HorizonPosition(
        int(record["lastEventTimeMs"]), frozenset(int(i) for i in record["idsAtTime"])
    )


def load_position(
    kafka: KafkaSettings, topic: str, source: str, timeout: float = 60
) -> HorizonPosition | None:
    key = checkpoint_key(source)
    payload = read_compacted(kafka, topic, key_prefix=key, timeout=timeout).get(key)
    if payload is None:
        return None
    try:
        return decode_checkpoint(payload)
    except AvroError as exc:
        raise CorruptHorizonCheckpoint(
            f"checkpoint of Horizon {source} in topic {topic} is unreadable: {exc}"
        ) from None
