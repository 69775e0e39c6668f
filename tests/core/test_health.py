"""/livez says whether the process works; /readyz (alias /healthz) whether the role does."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from vcstream.observability import Flag, Health, Heartbeat, ObservabilityServer
from vcstream.settings.observability import MetricsSettings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def served() -> Iterator[tuple[Health, Flag, Heartbeat, Clock, int, CollectorRegistry]]:
    clock = Clock()
    health, target, loop = Health(), Flag(None), Heartbeat(120, clock)
    health.add("sink:knative", target)
    health.add("loop", loop, live=True)
    registry = CollectorRegistry()
    server = ObservabilityServer(MetricsSettings(host="127.0.0.1", port=0), health, registry)
    server.start()
    yield health, target, loop, clock, server.port, registry
    server.stop()


def get(port: int, path: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def check_up(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        sample.labels["check"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "vcstream_health_check_up"
        for sample in family.samples
    }


def test_target_down_degrades_readiness_but_not_liveness(served) -> None:
    _, target, _, _, port, _ = served
    target.down("retrying: target answered HTTP 503")
    assert get(port, "/livez") == (200, {"status": "ok", "checks": {"loop": "ok"}})
    for path in ("/readyz", "/healthz"):
        status, body = get(port, path)
        assert status == 503 and body["status"] == "degraded", path
        assert body["checks"] == {
            "sink:knative": "retrying: target answered HTTP 503",
            "loop": "ok",
        }
    assert check_up(port) == {"sink:knative": 0.0, "loop": 1.0}
    target.ok()
    assert get(port, "/readyz")[0] == 200
    assert check_up(port) == {"sink:knative": 1.0, "loop": 1.0}


def test_stuck_main_loop_fails_liveness(served) -> None:
    _, _, loop, clock, port, _ = served
    clock.now += 121  # the loop has not turned for longer than it ever should
    status, body = get(port, "/livez")
    assert (status, body["status"]) == (503, "down")
    assert body["checks"] == {"loop": "main loop stuck for 121s"}
    assert get(port, "/readyz")[1]["status"] == "down"  # not ready either
    loop.beat()
    assert get(port, "/livez")[0] == 200


def test_stopped_server_no_longer_exports_its_checks(served) -> None:
    health, _, _, _, _, registry = served
    second = ObservabilityServer(MetricsSettings(host="127.0.0.1", port=0), health, registry)
    second.stop()  # registered nothing (the first exports already): unregisters nothing
    assert registry.get_sample_value("vcstream_health_check_up", {"check": "loop"}) == 1.0
