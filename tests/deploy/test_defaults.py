"""One set of defaults: `./dev run`, docker-compose and Kubernetes give every sink the same
topics (the Knative sink gets enriched alarms everywhere) and use the same topics in all,
processors' outputs included."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from devenv import LocalKafka, LocalVcsim
from devenv.pipeline import local_config
from sinks.kinds import SINK_KINDS
from sinks.registry import source_topics
from streams.topics import every_topic
from tests.deploy.test_compose import CONFIG as COMPOSE_CONFIG
from tests.deploy.test_kubernetes import deployments, settings_of
from vcstream.settings import Settings, load_settings


def dev_run_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    # the configuration ./dev run writes; nothing is started to build it
    kafka = LocalKafka(tmp_path / "kafka", port=9092, controller_port=9102)
    vcsim = LocalVcsim(tmp_path / "vcsim", port=8989)
    config = local_config(kafka, vcsim, tmp_path, "http://127.0.0.1:1", "http://127.0.0.1:2")
    path = tmp_path / "dev.yaml"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("VCSIM_PASSWORD", vcsim.password)
    return load_settings(path)


def compose_settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("VCENTER_PASSWORD", "from-compose")
    monkeypatch.setenv("VCSTREAM_SINKS__SLACK__WEBHOOKURL", "https://hooks.example/x")
    return load_settings(COMPOSE_CONFIG)


def kubernetes_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Settings]:
    found = {}
    for name, deployment in deployments().items():
        with monkeypatch.context() as scoped:
            found[name] = settings_of(deployment, tmp_path, scoped)
    return found


def test_every_sink_reads_the_same_topics_under_dev_run_compose_and_kubernetes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dev = dev_run_settings(tmp_path, monkeypatch)
    compose = compose_settings(monkeypatch)
    kubernetes = kubernetes_settings(tmp_path, monkeypatch)
    for kind in SINK_KINDS:
        wanted = source_topics(kind, dev)
        assert source_topics(kind, compose) == wanted, kind
        assert source_topics(kind, kubernetes[f"vcstream-sink-{kind}"]) == wanted, kind
    # enriched alarms (`...AlarmInfo`) and the gateway's webhook events reach the Broker
    # everywhere, not only under ./dev run
    assert source_topics("knative", dev) == ["vcenter.events", "vcenter.alarms", "vcstream.webhook"]


def test_dev_run_compose_and_kubernetes_use_the_same_topics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dev = {spec.name for spec in every_topic(dev_run_settings(tmp_path, monkeypatch))}
    compose = {spec.name for spec in every_topic(compose_settings(monkeypatch))}
    kubernetes = {
        spec.name
        for settings in kubernetes_settings(tmp_path, monkeypatch).values()
        for spec in every_topic(settings)
    }
    assert dev == compose == kubernetes
