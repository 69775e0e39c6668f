"""Kafka stopped under the gateway: 503 with Retry-After, and nothing written late."""

from __future__ import annotations

import json
import os
import queue
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

import schemas
from devenv import LocalKafka
from tests.gateway.conftest import BASIC, GatewayProcess, curl, gateway_config, records_of
from tests.gateway.test_ingest import structured
from tests.role_process import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def post(gateway: GatewayProcess, *ids: str) -> tuple[int, dict[str, str], object]:
    batch = json.dumps([structured(i) for i in ids]).encode()
    answer = curl(
        gateway.url + "/webhook",
        *BASIC,
        "-H", "Content-Type: application/cloudevents-batch+json",
        data=batch,
    )  # fmt: skip
    return answer.status, answer.headers, answer.json()


@pytest.fixture
def before(
    kafka_factory: Callable[..., LocalKafka],
    topic_name: Callable[[str], str],
    tmp_path: Path,
    gateway_process: Callable[[Path], GatewayProcess],
) -> tuple[LocalKafka, str, GatewayProcess]:
    """A private broker, its topic, and the gateway on it, which wrote `before-1`."""
    broker = kafka_factory()
    topic = topic_name("webhook")
    gateway = gateway_process(gateway_config(tmp_path / "gw.yaml", broker.bootstrap_servers, topic))
    assert post(gateway, "before-1")[0] == 200
    return broker, topic, gateway


def test_kafka_stopped_gives_503_with_retry_after_and_nothing_half_written(
    before: tuple[LocalKafka, str, GatewayProcess],
) -> None:
    broker, topic, gateway = before

    broker.stop()
    status, headers, body = post(gateway, "down-1", "down-2", "down-3")
    assert status == 503
    assert headers["retry-after"] == "7"
    assert body["written"] == []  # type: ignore[index]
    assert "did not acknowledge" in body["error"]  # type: ignore[index]
    assert gateway.metric("vcstream_gateway_events_rejected_total", reason="kafka_unavailable") == 3
    health = curl(gateway.metrics_url + "/healthz")
    assert health.status == 503 and "kafka" in health.body

    broker.start()
    # healthy again before any request: the gateway asks Kafka itself while it is down
    wait_for(lambda: curl(gateway.metrics_url + "/healthz").status == 200, 120, "health")
    # the sender retries until Kafka is back, as a 503 with Retry-After asks it to
    wait_for(lambda: post(gateway, "after-1")[0] == 200, 120, "the gateway to write again")
    ids = [schemas.decode(r).get_id() for r in records_of(broker.bootstrap_servers, topic)]
    assert ids.count("after-1") >= 1
    assert [i for i in ids if i != "after-1"] == ["before-1"]  # none of the refused batch


def test_kafka_killed_mid_request_gives_503_and_the_retried_events_are_written_once(
    before: tuple[LocalKafka, str, GatewayProcess],
) -> None:
    broker, topic, gateway = before
    received = gateway.metric("vcstream_gateway_received_bytes_total")

    # the broker freezes, so the request's events are produced but never acknowledged,
    # and dies while the request waits for them
    os.kill(broker.child.pid, signal.SIGSTOP)
    ids = [f"mid-{i}" for i in range(20)]
    answered: queue.Queue[tuple[int, dict[str, str], object]] = queue.Queue()
    threading.Thread(target=lambda: answered.put(post(gateway, *ids)), daemon=True).start()
    wait_for(
        lambda: gateway.metric("vcstream_gateway_received_bytes_total") > received,
        30,
        "the request to reach the gateway",
    )
    broker.kill()
    status, headers, body = answered.get(timeout=60)
    assert status == 503 and headers["retry-after"] == "7"
    assert isinstance(body, dict)
    written, unknown = body["written"], body["unknown"]
    assert written == []  # the broker was frozen before the request came
    assert sorted(unknown) == sorted(ids)  # produced, then never acknowledged

    broker.start()
    # the sender retries what was not written, until Kafka is back
    retry = [i for i in ids if i not in written]
    wait_for(lambda: post(gateway, *retry)[0] == 200, 120, "the gateway to write again")
    on_topic = [schemas.decode(r).get_id() for r in records_of(broker.bootstrap_servers, topic)]
    assert on_topic.count("before-1") == 1
    for event_id in ids:
        copies = on_topic.count(event_id)
        assert copies >= 1, f"{event_id} lost"
        # a second copy only of an event whose fate the 503 called unknown
        assert copies == 1 or event_id in unknown, f"{event_id} written {copies} times"
