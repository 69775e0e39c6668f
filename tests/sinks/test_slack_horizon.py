"""Slack messages for Horizon audit events: the severity's colour and what the event names."""

from __future__ import annotations

import json
from typing import Any

import pytest

import schemas
from schemas.horizon import encode_horizon
from sinks.slack_messages import COLOURS, digest_message, message_for

FAILED_LOGIN = {
    "id": 166419,
    "time": 1764700000123,
    "type": "BROKER_USER_AUTHFAILED_BAD_USER_PASSWORD",
    "severity": "AUDIT_FAIL",
    "module": "Broker",
    "message": "User EXAMPLE\\alice failed to authenticate: bad password",
    "user_id": "S-1-5-21-1",
    "machine_dns_name": None,
    "machine_id": None,
    "desktop_pool_name": "finance",
    "application_pool_name": None,
}


def horizon_event(**changes: Any):
    return schemas.decode(encode_horizon({**FAILED_LOGIN, **changes}, "https://hz-01.example.com"))


def test_audit_fail_is_red_and_names_type_user_pool_server_and_message() -> None:
    message = message_for(horizon_event())
    assert message["attachments"][0]["color"] == COLOURS["red"]
    assert message["text"] == (
        "[RED] Horizon AUDIT_FAIL: BROKER_USER_AUTHFAILED_BAD_USER_PASSWORD on "
        "hz-01.example.com: User EXAMPLE\\alice failed to authenticate: bad password"
    )
    blocks = json.dumps(message["attachments"][0]["blocks"])
    for shown in ("S-1-5-21-1", "finance", "hz-01.example.com", "2025-12-02 18:26:40 UTC"):
        assert shown in blocks
    assert "Machine" not in blocks  # absent fields are left out, not shown as None


@pytest.mark.parametrize(
    ("severity", "status"),
    [("ERROR", "red"), ("WARNING", "yellow"), ("AUDIT_SUCCESS", "green"), ("UNKNOWN", "gray")],
)
def test_severity_sets_the_colour(severity: str, status: str) -> None:
    message = message_for(horizon_event(severity=severity))
    assert message["attachments"][0]["color"] == COLOURS[status]
    assert message["text"].startswith(f"[{status.upper()}] Horizon {severity}:")


def test_a_storm_digest_counts_horizon_events_by_severity_and_user() -> None:
    events = [horizon_event(id=i, user_id=f"user{i % 2}") for i in range(6)]
    message = digest_message(events)
    assert message["attachments"][0]["color"] == COLOURS["red"]
    assert "6 red" in message["text"]
    assert "3 x user0" in json.dumps(message["attachments"][0]["blocks"])
