"""A vCenter event as the records of one transaction: the CloudEvent, then the checkpoint."""

from __future__ import annotations

from typing import Any

from producer.checkpoint import Checkpoint
from producer.position import Position
from schemas.codec import encode_event
from schemas.record import KafkaRecord
from schemas.vsphere import VCenterIdentity


def event_record(event: Any, identity: VCenterIdentity) -> KafkaRecord:
    """The event as a VEBA-compatible CloudEvent record, keyed by vCenter + entity."""
    return encode_event(event, identity)


def checkpoint_record(identity: VCenterIdentity, position: Position, key: bytes) -> KafkaRecord:
    return KafkaRecord(value=Checkpoint.at(identity, position).encode(), key=key)
