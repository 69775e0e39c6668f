"""The Grafana dashboard queries only metrics the code exports, and every query returns
data from a real Prometheus scraping them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devenv.dashboard import DASHBOARD, dashboard_queries, metric_names, substitute
from devenv.process import REPO, free_port, wait_until
from devenv.prometheus import LocalPrometheus
from tests.deploy.metrics_catalog import exported_sample_names

_GROUPING = re.compile(r"\b(?:by)\s*\(([^)]*)\)")


def test_every_dashboard_metric_is_exported_by_the_code() -> None:
    exported = exported_sample_names()
    unknown = {
        f"{query.where}: {name}"
        for query in dashboard_queries()
        for name in metric_names(query.promql)
        if name not in exported
    }
    assert not unknown, f"not exported by producer/, streams/ or sinks/: {sorted(unknown)}"


def test_dashboard_has_the_panels_operators_look_for() -> None:
    read = {
        name
        for query in dashboard_queries()
        if query.where.startswith("panel")
        for name in metric_names(query.promql)
    }
    for metric in (
        "vcstream_producer_events_total",  # event rate by type
        "vcstream_producer_checkpoint_age_seconds",
        "vcstream_sink_consumer_lag_records",
        "vcstream_sink_delivery_latency_seconds_bucket",  # p99
        "vcstream_sink_retried_total",
        "vcstream_sink_dead_lettered_total",
        "vcstream_streams_dead_lettered_total",
        "vcstream_producer_horizon_events_total",
        "vcstream_producer_horizon_unavailable_total",
        "vcstream_producer_horizon_history_gaps_total",
    ):
        assert metric in read, f"no panel reads {metric}"
    expressions = " ".join(query.promql for query in dashboard_queries())
    assert "histogram_quantile(0.99" in expressions
    assert "sum by (type)" in expressions


def test_panel_ids_are_unique_and_every_panel_uses_the_datasource_variable() -> None:
    board = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


def test_metric_names_skip_functions_labels_strings_and_keywords() -> None:
    expr = (
        'sum by (le, job) (rate(a_seconds_bucket{x="y{z}", job=~"b_.*"}[5m] offset 1h))'
        " / on(job) group_left(team) c:d_ratio * 1e3 > bool 2 unless absent(e_total)"
    )
    assert metric_names(expr) == {"a_seconds_bucket", "c:d_ratio", "e_total"}


def test_unknown_dashboard_variable_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match=r"uses \$cluster"):
        substitute('up{cluster="$cluster"}', {"vcenter": ".*"})
    assert substitute("rate(x{s=~'${sink}'}[$__rate_interval])", {"sink": ".*"}) == (
        "rate(x{s=~'.*'}[1m])"
    )


def test_dashboard_file_that_is_not_json_fails_loudly(tmp_path: Path) -> None:
    broken = tmp_path / "board.json"
    broken.write_text("{ not json")
    with pytest.raises(json.JSONDecodeError):
        dashboard_queries(broken)


@pytest.fixture(scope="module")
def prometheus_scraping_every_metric(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LocalPrometheus]:
    port = free_port()
    exporter = subprocess.Popen(
        [sys.executable, "-m", "tests.deploy.exercise_metrics", str(port)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert exporter.stdout is not None
        assert exporter.stdout.readline().strip() == "serving"
        server = LocalPrometheus(tmp_path_factory.mktemp("prom"), {"roles": [f"127.0.0.1:{port}"]})
        server.start()
        try:
            assert set(server.wait_scraped().values()) == {"up"}
            # rate() needs two samples of a series
            wait_until(
                lambda: bool(server.query("count(vcstream_sink_delivered_total offset 1s)")),
                30,
                "a second scrape",
            )
            yield server
        finally:
            server.stop()
    finally:
        exporter.kill()
        exporter.wait()


@pytest.mark.integration
def test_every_dashboard_query_returns_data_from_a_real_prometheus(
    prometheus_scraping_every_metric: LocalPrometheus,
) -> None:
    server = prometheus_scraping_every_metric
    empty = []
    for query in dashboard_queries():
        result = server.wait_for(query.promql, timeout=5)
        if not result:
            empty.append(f"{query.where}: {query.promql}")
            continue
        # a `by (label)` the metric lacks would group everything under one blank series
        grouping = _GROUPING.search(query.promql)
        labels = {label.strip() for label in grouping.group(1).split(",")} if grouping else set()
        for label in labels - {"le"}:
            assert all(label in sample["metric"] for sample in result), (query, label)
    assert not empty, "queries without data:\n" + "\n".join(empty)


@pytest.mark.integration
def test_every_metric_the_dashboard_names_has_series_in_prometheus(
    prometheus_scraping_every_metric: LocalPrometheus,
) -> None:
    names = {name for query in dashboard_queries() for name in metric_names(query.promql)}
    missing = sorted(name for name in names if not prometheus_scraping_every_metric.query(name))
    assert not missing


@pytest.mark.integration
def test_rare_event_panels_read_zero_when_their_metric_has_no_series(
    prometheus_scraping_every_metric: LocalPrometheus,
) -> None:
    # `rare or on (label) 0 * common`: a sink that never dead-lettered shows 0, not "No data"
    fallbacks = [query for query in dashboard_queries() if " or on (" in query.promql]
    assert fallbacks
    for query in fallbacks:
        primary = query.promql.split(" or on (")[0]
        [rare] = metric_names(primary)
        never_seen = query.promql.replace(rare, "vcstream_never_exported_total", 1)
        result = prometheus_scraping_every_metric.query(never_seen)
        assert result, query.where
        assert {float(sample["value"][1]) for sample in result} == {0.0}, query.promql
