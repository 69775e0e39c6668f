"""A watch client that stops reading costs the gateway a bounded amount of memory."""

from __future__ import annotations

import base64
import json
import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from confluent_kafka import Producer

import schemas
from devenv import LocalKafka
from tests.gateway.conftest import BASIC, PASSWORD, USER, GatewayProcess, curl, gateway_config
from tests.role_process import wait_for
from vcstream.kafka import TopicSpec, ensure_topics
from vcstream.settings.kafka import KafkaSettings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECORDS = 10_000
PAYLOAD = 4_000  # bytes of data per record: 40 MB in all


def fill(
    bootstrap: str,
    topic: str,
    records: int = RECORDS,
    data: Callable[[int], dict[str, Any]] = lambda i: {
        "i": i,
        "pad": os.urandom(PAYLOAD // 2).hex(),
    },
    **config: object,
) -> None:
    """`records` events of `data(i)` on partition 0 of `topic` (one partition)."""
    from cloudevents.core.v1.event import CloudEvent

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, **config})
    for i in range(records):
        event = CloudEvent(
            {
                "id": f"r{i}",
                "source": "/fill",
                "type": "com.example.fill",
                "time": datetime(2026, 1, 31, 12, tzinfo=UTC),
                "datacontenttype": "application/json",
            },
            data(i),  # by default incompressible
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


def serving(
    kafka: LocalKafka,
    topic_name: Callable[[str], str],
    tmp_path: Path,
    gateway_process: Callable[[Path], GatewayProcess],
    topic: str,
) -> GatewayProcess:
    """A gateway whose read API serves `topic`."""
    config = gateway_config(
        tmp_path / "gw.yaml", kafka.bootstrap_servers, topic_name("webhook"), watch_topic=topic
    )
    return gateway_process(config)


def growth_with_stalled_watches(gateway: GatewayProcess, watches: int, records: int) -> float:
    """MB the gateway grew while `watches` stalled watches were open and a reader that
    keeps up read all `records` (the stalled watches had as long to fetch)."""
    # warm up: one complete read, so libraries and buffers are in place before measuring
    assert curl(gateway.url + "/api/v1/events/0/0", *BASIC).status == 200
    baseline = gateway.rss_kb()
    stalled = [stalled_watch(gateway.url) for _ in range(watches)]
    try:
        wait_for(
            lambda: gateway.metric("vcstream_gateway_active_watches") == watches, 30, "watches"
        )
        full = curl(gateway.url + "/api/v1/events?partition=0&offset=0", *BASIC, timeout=300)
        assert full.body.count("\n") == records
        grown_mb = (gateway.rss_kb() - baseline) / 1024
        # still open, waiting
        assert gateway.metric("vcstream_gateway_active_watches") == watches
    finally:
        for sock in stalled:
            sock.close()
    wait_for(lambda: gateway.metric("vcstream_gateway_active_watches") == 0, 60, "the watch end")
    return grown_mb


def test_stalled_watch_client_does_not_grow_gateway_memory(
    kafka: LocalKafka,
    topic_name: Callable[[str], str],
    tmp_path: Path,
    gateway_process: Callable[[Path], GatewayProcess],
) -> None:
    topic = topic_name("big")
    ensure_topics(KafkaSettings(bootstrapServers=kafka.bootstrap_servers), [TopicSpec(topic)])
    fill(kafka.bootstrap_servers, topic)
    gateway = serving(kafka, topic_name, tmp_path, gateway_process, topic)
    grown_mb = growth_with_stalled_watches(gateway, 1, RECORDS)
    # what the stalled watch may hold: its small fetch queue, one batch and the
    # socket's buffers; buffering its backlog would add the topic's 40 MB
    assert grown_mb < 25, f"the gateway grew {grown_mb:.0f} MB"


def test_stalled_watches_on_a_compressed_topic_hold_little(
    kafka: LocalKafka,
    topic_name: Callable[[str], str],
    tmp_path: Path,
    gateway_process: Callable[[Path], GatewayProcess],
) -> None:
    """A cap on fetched bytes is a cap on compressed bytes: with 1 MB fetches each
    watch's consumer held the whole of this topic decompressed (about 15 MB)."""
    topic = topic_name("compressed")
    ensure_topics(KafkaSettings(bootstrapServers=kafka.bootstrap_servers), [TopicSpec(topic)])
    records = 20_000
    message = "Virtual machine web-01 on esx01.example.com in dc1 is powered on. " * 12
    fill(
        kafka.bootstrap_servers,
        topic,
        records,
        lambda i: {"i": i, "message": message},  # about 1 KB, compresses well
        **{"compression.type": "lz4", "batch.size": 1_000_000, "linger.ms": 100},
    )
    gateway = serving(kafka, topic_name, tmp_path, gateway_process, topic)
    grown_mb = growth_with_stalled_watches(gateway, 2, records)  # maxWatches is 3
    # measured: 78 MB with 1 MB fetches, 29 MB with the watch's small ones (of which
    # ~20 MB is what any full read leaves behind, as in the test above)
    assert grown_mb < 45, f"the gateway grew {grown_mb:.0f} MB"


def test_a_record_larger_than_a_watch_fetch_is_still_read(
    kafka: LocalKafka,
    topic_name: Callable[[str], str],
    tmp_path: Path,
    gateway_process: Callable[[Path], GatewayProcess],
) -> None:
    topic = topic_name("large")
    ensure_topics(KafkaSettings(bootstrapServers=kafka.bootstrap_servers), [TopicSpec(topic)])
    sizes = [300_000, 100, 600_000]  # bytes of hex: above and below a watch's fetch
    fill(kafka.bootstrap_servers, topic, len(sizes), lambda i: {"pad": "ab" * (sizes[i] // 2)})
    gateway = serving(kafka, topic_name, tmp_path, gateway_process, topic)
    read = curl(gateway.url + "/api/v1/events?partition=0&offset=0", *BASIC)
    assert read.status == 200, read.body
    lines = [json.loads(line) for line in read.body.splitlines()]
    assert [len(line["event"]["data"]["pad"]) for line in lines] == sizes
