"""The gateway's other refusals, each provoked: a full producer queue, a topic that is not
there, a malformed resume cursor, HTTPS when TLS files are configured."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

import schemas
from devenv import LocalKafka
from tests.gateway.conftest import (
    BASIC,
    GatewayProcess,
    curl,
    gateway_config,
    records_of,
)
from tests.gateway.test_ingest import structured

pytestmark = pytest.mark.integration

StartGateway = Callable[[Path], GatewayProcess]


def test_full_producer_queue_gives_503_naming_exactly_what_was_written(
    kafka: LocalKafka,
    topic_name: Callable[[str], str],
    tmp_path: Path,
    gateway_process: StartGateway,
) -> None:
    topic = topic_name("webhook")
    # a queue of one record: the second record of a batch finds it full
    config = gateway_config(
        tmp_path / "gw.yaml",
        kafka.bootstrap_servers,
        topic,
        client_properties='{queue.buffering.max.messages: "1"}',
    )
    gateway = gateway_process(config)
    batch = json.dumps([structured(f"q{i}") for i in range(3)]).encode()
    answer = curl(
        gateway.url + "/webhook",
        *BASIC,
        "-H", "Content-Type: application/cloudevents-batch+json",
        data=batch,
    )  # fmt: skip
    assert answer.status == 503, answer.body
    assert answer.headers["retry-after"] == "7"
    body = answer.json()
    assert "queue is full" in body["error"]  # type: ignore[index]
    assert body["written"] == ["q0"] and body["unknown"] == []  # type: ignore[index]
    ids = [schemas.decode(r).get_id() for r in records_of(kafka.bootstrap_servers, topic)]
    assert ids == ["q0"]  # exactly what the answer said


def test_read_api_on_a_topic_that_does_not_exist_is_404(
    kafka: LocalKafka,
    topic_name: Callable[[str], str],
    tmp_path: Path,
    gateway_process: StartGateway,
) -> None:
    config = gateway_config(
        tmp_path / "gw.yaml",
        kafka.bootstrap_servers,
        topic_name("webhook"),
        watch_topic=topic_name("absent"),
    )
    gateway = gateway_process(config)
    for path in ("/api/v1/range", "/api/v1/events/0/0", "/api/v1/events?watch=true"):
        answer = curl(gateway.url + path, *BASIC)
        assert answer.status == 404, (path, answer.body)
    assert "does not exist" in curl(gateway.url + "/api/v1/range", *BASIC).body
    bad = curl(gateway.url + "/api/v1/events", *BASIC, "-H", "Last-Event-ID: zero")
    assert bad.status == 400 and "partition:offset" in bad.body
    below = curl(gateway.url + "/api/v1/events", *BASIC, "-H", "Last-Event-ID: 0:-2")
    assert below.status == 400 and "below -1" in below.body
    for both in (
        "offset=1&from=now",
        "offset=1&from=earliest",
        "time=2026-01-01T00:00:00Z&offset=1",
    ):
        assert curl(gateway.url + "/api/v1/events?" + both, *BASIC).status == 400, both
    assert gateway.metric("vcstream_gateway_requests_total", route="/api/v1/range") >= 2


def test_https_when_tls_files_are_configured(
    kafka: LocalKafka,
    topic_name: Callable[[str], str],
    tmp_path: Path,
    gateway_process: StartGateway,
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    topic = topic_name("webhook")
    extra = f"  tls: {{certFile: {cert}, keyFile: {key}}}\n"
    config = gateway_config(tmp_path / "gw.yaml", kafka.bootstrap_servers, topic)
    config.write_text(config.read_text().replace("  auth:\n", extra + "  auth:\n"))
    gateway = gateway_process(config)
    port = gateway.url.rsplit(":", 1)[1]
    assert "(https," in gateway.log()
    url = f"https://localhost:{port}/webhook"
    event = json.dumps(structured("tls-1")).encode()
    ce = ["-H", "Content-Type: application/cloudevents+json"]
    answer = curl(url, "--cacert", str(cert), *BASIC, *ce, data=event)
    assert answer.status == 200, answer.body
    plain = subprocess.run(
        ["curl", "-sS", "--max-time", "10", f"http://localhost:{port}/webhook"],
        check=False,
        capture_output=True,
    )
    assert plain.returncode != 0 or b"400" in plain.stdout  # no plain HTTP on the TLS port
    ids = [schemas.decode(r).get_id() for r in records_of(kafka.bootstrap_servers, topic)]
    assert ids == ["tls-1"]


def test_over_the_rate_limit_gets_429_with_retry_after_and_nothing_written(
    kafka: LocalKafka,
    topic_name: Callable[[str], str],
    tmp_path: Path,
    gateway_process: StartGateway,
) -> None:
    topic = topic_name("webhook")
    config = gateway_config(
        tmp_path / "gw.yaml",
        kafka.bootstrap_servers,
        topic,
        # one event per 100 s after a burst of 2: the bucket refills by nothing in a test
        extra="  rateLimit: 0.01\n  rateBurst: 2\n",
    )
    gateway = gateway_process(config)

    def post(*ids: str) -> tuple[int, dict[str, str], str]:
        batch = json.dumps([structured(i) for i in ids]).encode()
        ce = ["-H", "Content-Type: application/cloudevents-batch+json"]
        answer = curl(gateway.url + "/webhook", *BASIC, *ce, data=batch)
        return answer.status, answer.headers, answer.body

    assert post("r1", "r2", "r3")[0] == 413  # more than the burst: never, not later
    assert post("r1", "r2")[0] == 200
    status, headers, body = post("r3")
    assert status == 429 and "rate limit" in body
    assert 1 <= int(headers["retry-after"]) <= 100
    ids = [schemas.decode(r).get_id() for r in records_of(kafka.bootstrap_servers, topic)]
    assert sorted(ids) == ["r1", "r2"]
    assert gateway.metric("vcstream_gateway_events_rejected_total", reason="rate_limited") == 1


def test_an_event_kafka_refuses_gives_503_naming_exactly_what_was_written(
    kafka: LocalKafka,
    topic_name: Callable[[str], str],
    tmp_path: Path,
    gateway_process: StartGateway,
) -> None:
    topic = topic_name("webhook")
    # records over 1000 bytes are refused by the client itself, when produced
    config = gateway_config(
        tmp_path / "gw.yaml",
        kafka.bootstrap_servers,
        topic,
        client_properties='{message.max.bytes: "1000"}',
    )
    gateway = gateway_process(config)
    batch = [structured("small"), structured("big", data={"pad": "x" * 2000})]
    answer = curl(
        gateway.url + "/webhook",
        *BASIC,
        "-H", "Content-Type: application/cloudevents-batch+json",
        data=json.dumps(batch).encode(),
    )  # fmt: skip
    assert answer.status == 503, answer.body
    body = answer.json()
    assert "refused event 1" in body["error"]  # type: ignore[index]
    assert body["written"] == ["small"]  # type: ignore[index]
    ids = [schemas.decode(r).get_id() for r in records_of(kafka.bootstrap_servers, topic)]
    assert ids == ["small"]
