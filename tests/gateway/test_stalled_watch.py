"""A watch client that stops reading costs the gateway a bounded amount of memory."""

from __future__ import annotations

import base64
import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import pytest
from confluent_kafka import Producer

import schemas
from devenv import LocalKafka
from tests.gateway.conftest import BASIC, PASSWORD, USER, GatewayProcess, curl, gateway_config
from tests.producer.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECORDS = 10_000
PAYLOAD = 4_000  # bytes of data per record: 40 MB in all


def fill(bootstrap: str, topic: str) -> None:
    from cloudevents.core.v1.event import CloudEvent

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for i in range(RECORDS):
        event = CloudEvent(
            {
                "id": f"r{i}",
                "source": "/fill",
                "type": "com.example.fill",
                "time": datetime(2026, 1, 31, 12, tzinfo=UTC),
                "datacontenttype": "application/json",
            },
            {"i": i, "pad": os.urandom(PAYLOAD // 2).hex()},  # incompressible
        )
        record = schemas.encode(event, b"k")
        while True:
            try:
                producer.produce(topic, record.value, record.key, headers=list(record.headers))
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(60) == 0


def stalled_watch(url: str) -> socket.socket:
    """A client that sends a watch request and then never reads a byte."""
    parsed = urlparse(url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((parsed.hostname, parsed.port))
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    sock.sendall(
        f"GET /api/v1/events?watch=true&partition=0&offset=0 HTTP/1.1\r\n"
        f"Host: {parsed.netloc}\r\nAuthorization: Basic {auth}\r\n\r\n".encode()
    )
    return sock


def test_stalled_watch_client_does_not_grow_gateway_memory(
    kafka: LocalKafka,
    topic_name: Callable[[str], str],
    tmp_path: Path,
    gateway_process: Callable[[Path], GatewayProcess],
) -> None:
    topic = topic_name("big")
    from vcstream.kafka import TopicSpec, ensure_topics
    from vcstream.settings.kafka import KafkaSettings

    ensure_topics(KafkaSettings(bootstrapServers=kafka.bootstrap_servers), [TopicSpec(topic)])
    fill(kafka.bootstrap_servers, topic)
    config = gateway_config(
        tmp_path / "gw.yaml", kafka.bootstrap_servers, topic_name("webhook"), watch_topic=topic
    )
    gateway = gateway_process(config)
    # warm up: one complete read, so libraries and buffers are in place before measuring
    assert curl(gateway.url + "/api/v1/events/0/0", *BASIC).status == 200
    baseline = gateway.rss_kb()

    sock = stalled_watch(gateway.url)
    try:
        wait_for(lambda: gateway.metric("vcstream_gateway_active_watches") == 1, 30, "the watch")
        # a reader that keeps up reads all 40 MB: the stalled watch had as long to fetch
        full = curl(gateway.url + "/api/v1/events?partition=0&offset=0", *BASIC, timeout=300)
        assert full.body.count("\n") == RECORDS
        grown_mb = (gateway.rss_kb() - baseline) / 1024
        # what the stalled watch may hold: its 1 MB fetch queue, one batch and the
        # socket's buffers; buffering its backlog would add the topic's 40 MB
        assert grown_mb < 25, f"the gateway grew {grown_mb:.0f} MB"
        assert gateway.metric("vcstream_gateway_active_watches") == 1  # still open, waiting
    finally:
        sock.close()
    wait_for(lambda: gateway.metric("vcstream_gateway_active_watches") == 0, 60, "the watch end")
