"""The alerting rules: valid for promtool, right on synthetic series, on metrics the code
exports, shipped to compose and Kubernetes alike, and firing in a real Prometheus."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devenv.dashboard import metric_names
from devenv.process import REPO
from devenv.prometheus import LocalPrometheus
from schemas.record import KafkaRecord
from sinks import registry
from sinks.runtime import SinkRunner
from tests.deploy.metrics_catalog import exported_sample_names
from tests.sinks.helpers import (
    ensure_topics_for,
    produce,
    run_until,
    settled,
    sink_settings,
    vm_records,
)
from tests.sinks.receivers import Receiver, parse_cloudevent
from vcstream.observability import Health, ObservabilityServer
from vcstream.settings.observability import MetricsSettings

RULES = REPO / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = Path(__file__).with_name("alerts_test.yml")
# exported only while a role serves /metrics (vcstream.observability), and Prometheus' own
SERVED = {"vcstream_health_check_up", "up"}


def promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        raise FileNotFoundError("no `promtool` on PATH: run deploy/local/install.sh (prometheus)")
    return found


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_rules_pass_promtool_check() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(RULES)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_each_alert_fires_on_its_fault_and_not_on_a_healthy_pipeline() -> None:
    # promtool's own unit tests: synthetic series per fault (tests/deploy/alerts_test.yml)
    result = subprocess.run(
        [promtool(), "test", "rules", RULE_TESTS.name],
        check=False,
        cwd=RULE_TESTS.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    cases = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    tested = {check["alertname"] for case in cases for check in case["alert_rule_test"]}
    assert tested == {rule["alert"] for rule in rules()}  # every alert has a test


def test_the_alerts_operators_asked_for_are_there() -> None:
    assert {rule["alert"] for rule in rules()} >= {
        "VcstreamProducerCheckpointStalled",
        "VcstreamProducerCollectorLagging",
        "VcstreamSinkBacklogGrowing",
        "VcstreamDeadLettersArriving",
        "VcstreamRoleNotReady",
    }


def test_every_metric_an_alert_reads_is_exported_by_the_code() -> None:
    exported = exported_sample_names() | SERVED
    unknown = {
        f"{rule['alert']}: {name}"
        for rule in rules()
        for name in metric_names(rule["expr"])
        if name not in exported
    }
    assert not unknown, sorted(unknown)


def test_compose_and_kubernetes_load_the_same_rules() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["prometheus"]
    mounted = {v.split(":")[1]: v.split(":")[0] for v in compose["volumes"] if v.startswith("./")}
    config = yaml.safe_load((REPO / "deploy" / "prometheus" / "compose.yml").read_text())
    [rule_file] = config["rule_files"]  # relative to the configuration's folder
    assert mounted["/etc/prometheus/prometheus.yml"] == "./deploy/prometheus/compose.yml"
    assert (REPO / mounted[f"/etc/prometheus/{rule_file}"]).resolve() == RULES
    monitoring = REPO / "deploy" / "kubernetes" / "monitoring"
    operator = yaml.safe_load((monitoring / "prometheusrule.yaml").read_text())
    assert operator["kind"] == "PrometheusRule"
    assert operator["spec"] == yaml.safe_load(RULES.read_text())
    kustomization = yaml.safe_load((monitoring / "kustomization.yaml").read_text())
    assert "prometheusrule.yaml" in kustomization["resources"]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(parse_cloudevent).start()
    yield server
    server.stop()


@pytest.mark.integration
def test_dead_letters_arriving_fires_in_a_real_prometheus(kafka, topic_name, tmp_path, receiver):
    topic, dlq = topic_name("events"), topic_name("dlq")
    health = Health()
    server = ObservabilityServer(MetricsSettings(host="127.0.0.1", port=0), health).start()
    prometheus = LocalPrometheus(
        tmp_path / "prometheus",
        {"vcstream-sink-knative": [f"127.0.0.1:{server.port}"]},
        rule_files=[RULES],
    )
    try:
        prometheus.start()
        prometheus.wait_scraped()  # a sample before the dead letter, for increase()
        good = vm_records(1)[0]
        poison = KafkaRecord(b"{not json", good.key, good.headers)  # undecodable data
        produce(kafka.bootstrap_servers, topic, [*vm_records(3), poison, *vm_records(3, start=4)])
        ensure_topics_for(kafka.bootstrap_servers, [dlq])
        settings = sink_settings(
            kafka.bootstrap_servers, "knative", dlq, topics=[topic], url=receiver.url
        )
        runner = SinkRunner(
            registry.create_sink("knative", settings),
            settings.kafka,
            topics=[topic],
            group_id="vcstream-sink-knative",
            dead_letter_topic=dlq,
            health=health,
        )
        run_until(runner, settled(runner, 7))
        assert (runner.report.delivered, runner.report.dead_lettered) == (6, 1)  # lost: none

        def firing() -> list[dict[str, Any]]:
            return [
                alert
                for alert in prometheus.alerts()
                if alert["labels"]["alertname"] == "VcstreamDeadLettersArriving"
                and alert["labels"].get("sink") == "knative"
                # delivery dead letters of earlier tests in this process may fire as well
                and alert["labels"].get("reason") == "poison"
                and alert["state"] == "firing"
            ]

        deadline = time.monotonic() + 60
        while not firing() and time.monotonic() < deadline:
            time.sleep(0.5)
        [alert] = firing()
        assert alert["labels"]["job"] == "vcstream-sink-knative"
        assert (
            alert["annotations"]["summary"]
            == "vcstream-sink-knative: records dead-lettered (poison)"
        )
    finally:
        prometheus.stop()
        server.stop()
