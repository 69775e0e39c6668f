"""LocalPrometheus: a real Prometheus scraping real /metrics endpoints on free ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter

from devenv.process import free_port
from devenv.prometheus import LocalPrometheus, PromQLError, prometheus_binary
from vcstream.observability import Health, ObservabilityServer
from vcstream.settings.observability import MetricsSettings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served_counter() -> Iterator[tuple[Counter, int]]:
    registry = CollectorRegistry()
    counter = Counter("vcstream_test_things_total", "Things.", ["kind"], registry=registry)
    server = ObservabilityServer(
        MetricsSettings(host="127.0.0.1", port=0), Health(), registry
    ).start()
    yield counter, server.port
    server.stop()


@pytest.fixture(scope="module")
def prometheus(
    tmp_path_factory: pytest.TempPathFactory, served_counter: tuple[Counter, int]
) -> Iterator[tuple[LocalPrometheus, int]]:
    _, port = served_counter
    nobody_listens = free_port()
    server = LocalPrometheus(
        tmp_path_factory.mktemp("prometheus"),
        {"alive": [f"127.0.0.1:{port}"], "dead": [f"127.0.0.1:{nobody_listens}"]},
    ).start()
    yield server, nobody_listens
    server.stop()


def test_scraped_counter_is_queryable_with_its_labels(
    prometheus: tuple[LocalPrometheus, int], served_counter: tuple[Counter, int]
) -> None:
    server, _ = prometheus
    counter, _ = served_counter
    counter.labels(kind="widget").inc(3)
    result = server.wait_for('vcstream_test_things_total{kind="widget"} == 3')
    assert len(result) == 1
    assert result[0]["metric"]["job"] == "alive"
    assert float(result[0]["value"][1]) == 3


def test_target_nobody_serves_is_reported_down(prometheus: tuple[LocalPrometheus, int]) -> None:
    server, dead_port = prometheus
    health = server.wait_scraped()
    assert health[f"http://127.0.0.1:{dead_port}/metrics"] == "down"
    up = {sample["metric"]["job"]: sample["value"][1] for sample in server.query("up")}
    assert up == {"alive": "1", "dead": "0"}


def test_malformed_promql_raises_prometheus_parse_error(
    prometheus: tuple[LocalPrometheus, int],
) -> None:
    server, _ = prometheus
    with pytest.raises(PromQLError, match="parse error"):
        server.query("sum(rate(vcstream_test_things_total[1m])")


def test_scalar_expression_is_one_sample(prometheus: tuple[LocalPrometheus, int]) -> None:
    server, _ = prometheus
    [sample] = server.query("vector(1) + 1")
    assert float(sample["value"][1]) == 2


def test_target_that_is_not_host_port_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"target 'http://x/metrics' of job 'sink'"):
        LocalPrometheus(tmp_path, {"sink": ["http://x/metrics"]})
    with pytest.raises(ValueError, match="job name 'my sink'"):
        LocalPrometheus(tmp_path, {"my sink": ["127.0.0.1:1"]})


def test_missing_prometheus_binary_names_the_install_script(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PROMETHEUS", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"deploy/local/install\.sh"):
        prometheus_binary()


def test_prometheus_that_cannot_start_reports_its_log(tmp_path: Path) -> None:
    busy = LocalPrometheus(tmp_path / "first", {"x": ["127.0.0.1:1"]}).start()
    try:
        clash = LocalPrometheus(tmp_path / "second", {"x": ["127.0.0.1:1"]}, port=busy.port)
        with pytest.raises(RuntimeError, match="Prometheus exited during start-up"):
            clash.start()
    finally:
        busy.stop()
