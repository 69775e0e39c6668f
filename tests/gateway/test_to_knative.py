"""A webhook event travels the pipeline: a sender not written here (`curl`, the CloudEvents
conformance tool) → gateway → Kafka → Knative sink → receiver."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

import schemas
from devenv import LocalKafka
from devenv.process import cache_dir
from tests.gateway.conftest import (
    BASIC,
    PASSWORD,
    REPO,
    TOKEN,
    USER,
    GatewayProcess,
    curl,
    gateway_config,
    records_of,
)
from tests.gateway.test_ingest import binary_event
from tests.sinks.helpers import ensure_topics_for
from tests.sinks.receivers import Receiver, parse_cloudevent

pytestmark = pytest.mark.integration

# deploy/local/install.sh builds it (go install github.com/cloudevents/conformance, v0.4.1)
CONFORMANCE = cache_dir() / "bin" / "cloudevents"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver(parse_cloudevent).start()
    yield started
    started.stop()


@pytest.fixture
def pipeline(
    kafka: LocalKafka,
    topic_name: Callable[[str], str],
    tmp_path: Path,
    gateway_process: Callable[[Path], GatewayProcess],
    receiver: Receiver,
) -> Iterator[tuple[GatewayProcess, str]]:
    """The gateway and a Knative sink forwarding its topic to `receiver`; the topic."""
    topic, dlq = topic_name("webhook"), topic_name("dlq")
    ensure_topics_for(kafka.bootstrap_servers, [dlq])
    config = gateway_config(tmp_path / "gw.yaml", kafka.bootstrap_servers, topic)
    config.write_text(
        config.read_text()
        + f"""sinks:
  knative:
    url: {receiver.url}
    topics: [{topic}]
    groupId: {topic_name("group")}
    delivery: {{deadLetterTopic: {dlq}}}
"""
    )
    gateway = gateway_process(config)
    sink = subprocess.Popen(
        [sys.executable, "-m", "cli", "sink", "knative", "--config", str(config)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield gateway, topic
    finally:
        sink.kill()
        sink.wait(10)


def test_a_posted_event_reaches_the_knative_receiver_as_it_was_sent(
    pipeline: tuple[GatewayProcess, str], receiver: Receiver
) -> None:
    gateway, _ = pipeline
    posted = curl(gateway.url + "/webhook", *BASIC, *binary_event("relay-1"), data=b'{"a": 1}')
    assert posted.status == 200, posted.body
    receiver.wait_for(1, timeout=120)
    [event] = receiver.accepted
    assert event.get_id() == "relay-1"
    assert event.get_source() == "https://ext.example.com/alerts"
    assert event.get_type() == "com.example.alert.v1"
    assert event.get_subject() == "vm-1"
    assert event.get_extension("severity") == "high"
    assert event.get_data() == {"a": 1}


def conformance_event(mode: str, event_id: str) -> str:
    """One event of the conformance tool's YAML (its pkg/event.Event), sent with a
    bearer token (a transport extension is an HTTP header the tool adds)."""
    return f"""Mode: {mode}
ContextAttributes:
  specversion: "1.0"
  type: com.example.conformance.{mode}.v1
  time: "2026-02-03T04:05:06Z"
  id: {event_id}
  source: /conformance/{mode}
  subject: vm-{mode}
  datacontenttype: application/json
  Extensions:
    severity: low
    comexampleextension: "{mode}-value"
TransportExtensions:
  Authorization: "Bearer {TOKEN}"
Data: |
  {{"mode": "{mode}", "n": 7}}
"""


def conformance(*args: str) -> subprocess.CompletedProcess[str]:
    assert CONFORMANCE.exists(), f"{CONFORMANCE}: run deploy/local/install.sh"
    return subprocess.run(
        [str(CONFORMANCE), *args], check=False, capture_output=True, text=True, timeout=60
    )


def test_events_the_conformance_tool_sends_reach_the_topic_and_receiver_intact(
    pipeline: tuple[GatewayProcess, str],
    receiver: Receiver,
    kafka: LocalKafka,
    tmp_path: Path,
) -> None:
    gateway, topic = pipeline
    webhook = gateway.url + "/webhook"
    events = tmp_path / "events.yaml"
    events.write_text(
        conformance_event("binary", "ct-binary")
        + "---\n"
        + conformance_event("structured", "ct-structured")
    )
    # `invoke` fails on any answer but 2xx
    invoked = conformance("invoke", webhook, "-f", str(events), "--delay", "0s")
    assert invoked.returncode == 0, invoked.stdout + invoked.stderr
    # `send`, with basic auth as Go's HTTP client sends a URL's user:password
    with_basic = webhook.replace("http://", f"http://{USER}:{PASSWORD}@")
    sent = conformance(
        "send", with_basic, "--mode", "structured", "--id", "ct-send",
        "--source", "/conformance/send", "--type", "com.example.conformance.send.v1",
        "--datacontenttype", "application/json", "--data", '{"mode": "send"}',
        "--extension", "severity=high", "--time", "2026-02-03T04:05:06Z",
    )  # fmt: skip
    assert sent.returncode == 0, sent.stdout + sent.stderr
    refused = conformance(
        "send", webhook, "--id", "ct-refused", "--source", "/conformance/send",
        "--type", "com.example.conformance.send.v1", "--datacontenttype", "application/json",
        "--data", "{}",
    )  # fmt: skip
    assert refused.returncode != 0 and "401" in refused.stdout + refused.stderr

    # each request was answered 200 only once Kafka acknowledged its event
    records = records_of(kafka.bootstrap_servers, topic)
    assert len(records) == 3  # nothing of the refused request, nothing twice
    written = {event.get_id(): event for event in map(schemas.decode, records)}
    receiver.wait_for(3, timeout=120)
    delivered = {e.get_id(): e for e in receiver.accepted}
    assert set(written) == set(delivered) == {"ct-binary", "ct-structured", "ct-send"}
    sent_at = datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)
    for received in (written, delivered):
        for mode in ("binary", "structured"):
            event = received[f"ct-{mode}"]
            assert event.get_source() == f"/conformance/{mode}"
            assert event.get_type() == f"com.example.conformance.{mode}.v1"
            assert event.get_subject() == f"vm-{mode}"
            assert event.get_time() == sent_at
            assert event.get_extension("severity") == "low"
            assert event.get_extension("comexampleextension") == f"{mode}-value"
            assert event.get_data() == {"mode": mode, "n": 7}
        event = received["ct-send"]
        assert event.get_source() == "/conformance/send"
        assert event.get_type() == "com.example.conformance.send.v1"
        assert event.get_extension("severity") == "high"
        assert event.get_time() == sent_at
        assert event.get_data() == {"mode": "send"}
    assert len(receiver.accepted) == 3  # each once
