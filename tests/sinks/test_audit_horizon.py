"""The audit store files a Horizon event under its server, like a vCenter's under its UUID."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.horizon import encode_horizon
from schemas.record import KafkaRecord
from sinks.audit.record import audit_record
from sinks.base import SinkEvent

EVENT = {"id": 7, "time": 1764700000123, "type": "VLSI_USERLOGGEDIN_REST", "severity": "INFO"}


def test_audit_store_files_a_horizon_event_under_its_server() -> None:
    record = encode_horizon(EVENT, "https://cs01.example.com:8443")
    located = KafkaRecord(record.value, record.key, record.headers, "raw", 0, 7)
    stored = audit_record(SinkEvent(None, located), datetime.now(UTC))
    assert (stored["vcenterUuid"], stored["entity"]) == ("horizon:cs01.example.com:8443", None)
    assert stored["source"] == "https://cs01.example.com:8443"
