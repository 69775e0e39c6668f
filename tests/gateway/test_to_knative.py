"""A webhook event travels the pipeline: `curl` → gateway → Kafka → Knative sink → receiver."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devenv import LocalKafka
from tests.gateway.conftest import BASIC, REPO, GatewayProcess, curl, gateway_config
from tests.gateway.test_ingest import binary_event
from tests.sinks.helpers import ensure_topics_for
from tests.sinks.receivers import Receiver, parse_cloudevent

pytestmark = pytest.mark.integration


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver(parse_cloudevent).start()
    yield started
    started.stop()


def test_a_posted_event_reaches_the_knative_receiver_as_it_was_sent(
    kafka: LocalKafka,
    topic_name: Callable[[str], str],
    tmp_path: Path,
    gateway_process: Callable[[Path], GatewayProcess],
    receiver: Receiver,
) -> None:
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
        posted = curl(gateway.url + "/webhook", *BASIC, *binary_event("relay-1"), data=b'{"a": 1}')
        assert posted.status == 200, posted.body
        receiver.wait_for(1, timeout=120)
    finally:
        sink.kill()
        sink.wait(10)
    [event] = receiver.accepted
    assert event.get_id() == "relay-1"
    assert event.get_source() == "https://ext.example.com/alerts"
    assert event.get_type() == "com.example.alert.v1"
    assert event.get_subject() == "vm-1"
    assert event.get_extension("severity") == "high"
    assert event.get_data() == {"a": 1}
