"""The wire contract: every Kafka record is a CloudEvent (Kafka binding, binary mode).

Nothing outside this package builds or parses `ce_*` headers or event payloads.
"""

from schemas.codec import decode, encode
from schemas.errors import InvalidRecord
from schemas.record import KafkaRecord
from schemas.vsphere import VCenterIdentity, event_id, event_type, record_key

__all__ = [
    "InvalidRecord",
    "KafkaRecord",
    "VCenterIdentity",
    "decode",
    "encode",
    "event_id",
    "event_type",
    "record_key",
]
