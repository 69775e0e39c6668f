"""`typeFormat: event-router` for Horizon events: VEBA v0.7's router type, no subject."""

from __future__ import annotations

from schemas.horizon import encode_horizon
from sinks.knative import event_router_changes

EVENT = {"id": 7, "time": 1764700000123, "type": "VLSI_USERLOGIN_REST_FAILED", "severity": "X"}


def test_horizon_event_gets_the_v07_event_router_type_and_no_subject() -> None:
    record = encode_horizon(EVENT, "https://hz-01.example.com")
    changes = event_router_changes(record.cloudevent())
    assert changes == {"type": "com.vmware.event.router/horizon.vlsi_userlogin_rest_failed.v0"}


def test_v07_horizon_type_reaches_the_receiver_in_both_content_modes() -> None:
    from sinks.knative import KnativeSink
    from vcstream.settings.sinks import KnativeSinkSettings

    record = encode_horizon(EVENT, "https://hz-01.example.com")
    wanted = "com.vmware.event.router/horizon.vlsi_userlogin_rest_failed.v0"
    for mode in ("binary", "structured"):
        settings = KnativeSinkSettings.model_validate(
            {"url": "http://127.0.0.1:1", "typeFormat": "event-router", "contentMode": mode}
        )
        headers, body = KnativeSink(settings).request_for(record.cloudevent())
        assert headers.get("ce-type") == wanted or wanted.encode() in body, mode
