"""The producer's checkpoint: one Avro record per vCenter in a compacted topic.

It is written in the same Kafka transaction as the events it follows, so the topic
and the checkpoint can never disagree, whatever moment the producer dies at.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from producer.compacted import read_compacted
from producer.position import BOUNDARY_KEY, LEGACY_BOUNDARY_KEY, Position, as_utc_micros
from schemas import avro
from schemas.avro import AvroError
from schemas.vsphere import VCenterIdentity
from vcstream.settings.kafka import KafkaSettings

log = logging.getLogger(__name__)
SCHEMA = "checkpoint"


class CorruptCheckpoint(Exception):
    """The stored checkpoint cannot be read; resuming from a guess could lose events."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    vcenter_uuid: str
    source: str
    position: Position
    updated_at: datetime

    def encode(self) -> bytes:
        return avro.encode(
            SCHEMA,
            {
                "vcenterUuid": self.vcenter_uuid,
                "source": self.source,
                "lastEventKey": self.position.key,
                "lastEventTime": self.position.time,
                "updatedAt": self.updated_at,
            },
        )

    @classmethod
    def decode(cls, payload: bytes) -> Checkpoint:
        record = avro.decode(SCHEMA, payload)
        key = int(record["lastEventKey"])
        if key == LEGACY_BOUNDARY_KEY:
            key = BOUNDARY_KEY
        return cls(
            vcenter_uuid=record["vcenterUuid"],
            source=record["source"],
            position=Position(key, as_utc_micros(record["lastEventTime"])),
            updated_at=as_utc_micros(record["updatedAt"]),
        )

    @classmethod
    def at(cls, identity: VCenterIdentity, position: Position) -> Checkpoint:
        return cls(identity.instance_uuid, identity.source, position, datetime.now(UTC))


def load_checkpoint(
    kafka: KafkaSettings, topic: str, identity: VCenterIdentity, key: bytes, timeout: float = 60
) -> Checkpoint | None:
    """The committed checkpoint under `key` (see producer.identity), or None."""
    payload = read_compacted(kafka, topic, key_prefix=key, timeout=timeout).get(key)
    if payload is None:
        return None
    try:
        checkpoint = Checkpoint.decode(payload)
    except AvroError as exc:
        raise CorruptCheckpoint(
            f"checkpoint of vCenter {identity.name} ({identity.instance_uuid}) in topic "
            f"{topic} is unreadable: {exc}"
        ) from None
    if checkpoint.source != identity.source:
        # the same vCenter under a new address: the position is still its own
        log.info(
            "vCenter %s was checkpointed as %s, now configured as %s",
            identity.instance_uuid,
            checkpoint.source,
            identity.source,
        )
    return checkpoint
