"""Horizon audit events in VEBA v0.8's HorizonSource form."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import schemas
from schemas.horizon import encode_horizon, horizon_event_id

EVENT = {
    "id": 4242,
    "time": 1764700000123,
    "type": "VLSI_USERLOGGEDIN_REST",
    "severity": "AUDIT_SUCCESS",
    "module": "Broker",
    "message": "User EXAMPLE\\alice has logged in",
    "user_id": "S-1-5-21-1",
    "machine_dns_name": None,
    "machine_id": None,
    "desktop_pool_name": None,
    "application_pool_name": None,
}


def test_horizon_event_has_the_v08_attributes_and_the_data_as_returned() -> None:
    record = encode_horizon(EVENT, "https://cs01.example.com")
    event = schemas.decode(record)
    assert event.get_type() == "com.vmware.horizon.vlsi_userloggedin_rest.v0"
    assert event.get_source() == "https://cs01.example.com"
    assert event.get_time() == datetime(2025, 12, 2, 18, 26, 40, 123000, tzinfo=UTC)
    assert event.get_datacontenttype() == "application/json"
    assert event.get_data() == EVENT
    assert record.key == b"horizon:cs01.example.com"


def test_horizon_event_id_is_deterministic_and_differs_between_servers() -> None:
    one = schemas.decode(encode_horizon(EVENT, "https://cs01.example.com")).get_id()
    again = schemas.decode(encode_horizon(EVENT, "https://cs01.example.com")).get_id()
    other = schemas.decode(encode_horizon(EVENT, "https://cs02.example.com")).get_id()
    assert one == again == horizon_event_id("https://cs01.example.com", 4242)
    assert one != other


@pytest.mark.parametrize("broken", [{"time": None}, {"id": "x"}, {"type": ""}])
def test_horizon_event_without_id_time_or_type_is_refused(broken: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="Horizon event"):
        encode_horizon({**EVENT, **broken}, "https://cs01.example.com")
