"""Webhook senders post with `curl`; what Kafka holds afterwards is read back."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

import schemas
from devenv import LocalKafka
from tests.gateway.conftest import (
    BASIC,
    BEARER,
    GatewayProcess,
    curl,
    gateway_config,
    records_of,
)

pytestmark = pytest.mark.integration

StartGateway = Callable[[Path], GatewayProcess]


def binary_event(event_id: str, subject: str = "vm-1") -> list[str]:
    return [
        "-H", "ce-specversion: 1.0",
        "-H", f"ce-id: {event_id}",
        "-H", "ce-source: https://ext.example.com/alerts",
        "-H", "ce-type: com.example.alert.v1",
        "-H", f"ce-subject: {subject}",
        "-H", "ce-time: 2026-01-31T12:00:00Z",
        "-H", "ce-severity: high",
        "-H", "Content-Type: application/json",
    ]  # fmt: skip


def structured(event_id: str, **changes: object) -> dict[str, object]:
    event: dict[str, object] = {
        "specversion": "1.0",
        "id": event_id,
        "source": "/ext/monitor",
        "type": "com.example.check.v1",
        "subject": "host-7",
        "time": "2026-01-31T12:00:01Z",
        "datacontenttype": "application/json",
        "data": {"check": "disk", "ok": False},
    }
    event.update(changes)
    return event


@pytest.fixture
def gateway(
    kafka: LocalKafka,
    topic_name: Callable[[str], str],
    tmp_path: Path,
    gateway_process: StartGateway,
) -> GatewayProcess:
    config = gateway_config(tmp_path / "gw.yaml", kafka.bootstrap_servers, topic_name("webhook"))
    return gateway_process(config)


def topic_of(gateway: GatewayProcess) -> str:
    return next(
        line.split(":", 1)[1].strip()
        for line in gateway.config.read_text().splitlines()
        if line.strip().startswith("topic:")
    )


def test_binary_and_structured_events_reach_the_topic_with_their_attributes(
    gateway: GatewayProcess, kafka: LocalKafka
) -> None:
    url = gateway.url + "/webhook"
    posted = curl(url, *BASIC, *binary_event("alert-1"), data=b'{"cpu": 97.5}')
    assert posted.status == 200, posted.body
    body = json.dumps(structured("check-1")).encode()
    answer = curl(url, *BEARER, "-H", "Content-Type: application/cloudevents+json", data=body)
    assert answer.status == 200, answer.body
    assert answer.json() == {"accepted": 1, "topic": topic_of(gateway)}

    records = records_of(kafka.bootstrap_servers, topic_of(gateway))
    events = {schemas.decode(r).get_id(): (r, schemas.decode(r)) for r in records}
    assert set(events) == {"alert-1", "check-1"}
    record, alert = events["alert-1"]
    assert alert.get_source() == "https://ext.example.com/alerts"
    assert alert.get_type() == "com.example.alert.v1"
    assert alert.get_subject() == "vm-1"
    assert alert.get_extension("severity") == "high"
    assert alert.get_time().isoformat() == "2026-01-31T12:00:00+00:00"  # type: ignore[union-attr]
    assert alert.get_data() == {"cpu": 97.5}
    assert record.key == b"https://ext.example.com/alerts/vm-1"  # source + subject
    record, check = events["check-1"]
    assert check.get_type() == "com.example.check.v1"
    assert check.get_data() == {"check": "disk", "ok": False}
    assert record.key == b"/ext/monitor/host-7"
    assert gateway.metric("vcstream_gateway_events_accepted_total") == 2


def test_batch_with_one_bad_event_writes_nothing_and_names_it(
    gateway: GatewayProcess, kafka: LocalKafka
) -> None:
    batch = [structured("ok-1"), structured("bad-2", type=None), structured("ok-3")]
    del batch[1]["type"]
    answer = curl(
        gateway.url + "/webhook",
        *BASIC,
        "-H", "Content-Type: application/cloudevents-batch+json",
        data=json.dumps(batch).encode(),
    )  # fmt: skip
    assert answer.status == 400
    error = str(answer.json()["error"])  # type: ignore[index]
    assert "event 1 of the batch" in error and "bad-2" in error and "type" in error

    good = [structured("ok-1"), structured("ok-2")]
    answer = curl(
        gateway.url + "/webhook",
        *BASIC,
        "-H", "Content-Type: application/cloudevents-batch+json",
        data=json.dumps(good).encode(),
    )  # fmt: skip
    assert answer.status == 200, answer.body
    ids = [
        schemas.decode(r).get_id() for r in records_of(kafka.bootstrap_servers, topic_of(gateway))
    ]
    assert sorted(ids) == ["ok-1", "ok-2"]  # nothing of the refused batch
    assert gateway.metric("vcstream_gateway_events_rejected_total", reason="invalid") == 3


@pytest.mark.parametrize(
    "credentials",
    [[], ["-u", "veba:wrong"], ["-H", "Authorization: Bearer nope"], ["-u", "other:x"]],
    ids=["missing", "wrong-password", "wrong-token", "wrong-user"],
)
def test_wrong_or_missing_credentials_are_refused_and_nothing_written(
    gateway: GatewayProcess, kafka: LocalKafka, credentials: list[str]
) -> None:
    answer = curl(gateway.url + "/webhook", *credentials, *binary_event("x-1"), data=b"{}")
    assert answer.status == 401
    assert "www-authenticate" in answer.headers
    assert curl(gateway.url + "/api/v1/range", *credentials).status == 401
    # a good request after it: what is on the topic is that one alone
    assert curl(gateway.url + "/webhook", *BASIC, *binary_event("x-2"), data=b"{}").status == 200
    ids = [
        schemas.decode(r).get_id() for r in records_of(kafka.bootstrap_servers, topic_of(gateway))
    ]
    assert ids == ["x-2"]


def test_malformed_oversize_and_non_cloudevent_bodies_get_4xx_with_a_reason(
    gateway: GatewayProcess, kafka: LocalKafka
) -> None:
    url = gateway.url + "/webhook"
    big = json.dumps({"blob": "x" * 5000}).encode()  # maxEventSize is 4096
    answer = curl(url, *BASIC, *binary_event("big"), data=big)
    assert answer.status == 413 and "at most 4096" in answer.body
    huge = b"[" + b",".join([json.dumps(structured("h")).encode()] * 400) + b"]"
    answer = curl(url, *BASIC, "-H", "Content-Type: application/cloudevents-batch+json", data=huge)
    assert answer.status == 413  # maxRequestSize is 65536
    answer = curl(url, *BASIC, *binary_event("bad-json"), data=b'{"cpu": ')
    assert answer.status == 400 and "not valid JSON" in answer.body
    answer = curl(url, *BASIC, "-H", "Content-Type: text/plain", data=b"hello")
    assert answer.status == 415 and "not a CloudEvent" in answer.body
    xml = [*binary_event("xml")[:-2], "-H", "Content-Type: application/xml"]
    answer = curl(url, *BASIC, *xml, data=b"<a/>")
    assert answer.status == 415 and "application/json" in answer.body
    no_id = json.dumps({k: v for k, v in structured("n").items() if k != "id"}).encode()
    answer = curl(url, *BASIC, "-H", "Content-Type: application/cloudevents+json", data=no_id)
    assert answer.status == 400 and "missing attribute id" in answer.body
    assert curl(url, *BASIC, *binary_event("fine"), data=b"{}").status == 200
    ids = [
        schemas.decode(r).get_id() for r in records_of(kafka.bootstrap_servers, topic_of(gateway))
    ]
    assert ids == ["fine"]
    assert gateway.metric("vcstream_gateway_events_rejected_total", reason="too_large") == 2
