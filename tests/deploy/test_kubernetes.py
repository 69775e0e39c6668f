"""deploy/kubernetes: the manifests parse and reference only topics, ports, settings and
environment variables that the code really uses."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from cli import app
from devenv.pipeline import ROLES
from streams.topics import every_topic
from vcstream.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "kubernetes"
# Secrets' placeholder values stand in for the real ones when a Deployment's env is loaded
SECRET_PLACEHOLDER = "https://placeholder.invalid/secret"
# topic settings the manifests may add to what `vcstream topics create` sets
BROKER_SIDE_TOPIC_CONFIG = {"min.insync.replicas"}


@cache
def manifests() -> dict[str, list[dict[str, Any]]]:
    """Every YAML file under deploy/kubernetes → its documents."""
    return {
        str(path.relative_to(K8S)): [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
        for path in sorted(K8S.rglob("*.yaml"))
    }


def resources(kind: str) -> list[dict[str, Any]]:
    return [doc for docs in manifests().values() for doc in docs if doc.get("kind") == kind]


def deployments() -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in resources("Deployment")}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    [only] = deployment["spec"]["template"]["spec"]["containers"]
    return dict(only)


def config_files() -> dict[str, str]:
    [config_map] = [
        doc for doc in resources("ConfigMap") if doc["metadata"]["name"] == "vcstream-config"
    ]
    return dict(config_map["data"])


def secret_values() -> dict[tuple[str, str], str]:
    return {
        (doc["metadata"]["name"], key): value
        for doc in resources("Secret")
        for key, value in doc["stringData"].items()
    }


def settings_of(
    deployment: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """The settings a Deployment's container would load: its config file and its env."""
    env = {}
    files = config_files()
    for var in container(deployment)["env"]:
        if "valueFrom" in var:
            ref = var["valueFrom"]["secretKeyRef"]
            assert (ref["name"], ref["key"]) in secret_values(), (
                f"{var['name']}: no such Secret key"
            )
            env[var["name"]] = SECRET_PLACEHOLDER
        else:
            env[var["name"]] = var["value"]
    config_path = Path(env.pop("VCSTREAM_CONFIG"))
    assert config_path.parent == Path("/etc/vcstream") and config_path.name in files
    local = tmp_path / config_path.name
    local.write_text(files[config_path.name])
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings(local)


def test_every_manifest_parses_and_names_its_kind() -> None:
    assert manifests()
    for path, docs in manifests().items():
        assert docs, f"{path} is empty"
        for doc in docs:
            assert {"apiVersion", "kind"} <= set(doc), path
            if doc["kind"] != "Kustomization":
                assert doc["metadata"]["name"], path


def test_kustomizations_list_every_manifest_beside_them() -> None:
    for kustomization in K8S.rglob("kustomization.yaml"):
        listed = set(yaml.safe_load(kustomization.read_text())["resources"])
        beside = {p.name for p in kustomization.parent.glob("*.yaml")} - {"kustomization.yaml"}
        assert listed == beside, kustomization


def test_a_deployment_per_role_running_a_command_that_exists() -> None:
    commands = sorted(container(d)["args"] for d in deployments().values())
    assert commands == sorted(ROLES.values())
    runner = CliRunner()
    for name, deployment in deployments().items():
        result = runner.invoke(app, [*container(deployment)["args"], "--help"])
        assert result.exit_code == 0, f"{name}: {result.output}"


def test_configuration_files_are_valid_settings_and_agree(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VCENTER_PASSWORD", "placeholder")
    loaded = {}
    for name, text in config_files().items():
        (tmp_path / name).write_text(text)
        loaded[name] = load_settings(tmp_path / name)
    shared, producer = loaded["vcstream.yaml"], loaded["producer.yaml"]
    assert producer.vcenters and not shared.vcenters  # only the producer holds vCenter secrets
    assert producer.model_dump(exclude={"vcenters"}) == shared.model_dump(exclude={"vcenters"})


def test_every_deployment_loads_its_settings_from_its_env_and_secrets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, deployment in deployments().items():
        with monkeypatch.context() as scoped:
            settings = settings_of(deployment, tmp_path, scoped)
        if name == "vcstream-sink-slack":
            assert settings.sinks.slack is not None
            assert settings.sinks.slack.webhook_url.get_secret_value() == SECRET_PLACEHOLDER


def without_env(deployment: dict[str, Any], name: str) -> dict[str, Any]:
    copy: dict[str, Any] = yaml.safe_load(yaml.safe_dump(deployment))
    spec = copy["spec"]["template"]["spec"]["containers"][0]
    spec["env"] = [var for var in spec["env"] if var["name"] != name]
    return copy


def test_env_names_are_ones_the_code_reads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    referenced = set(re.findall(r"fromEnv:\s*(\w+)", "\n".join(config_files().values())))
    for name, deployment in deployments().items():
        for var in container(deployment)["env"]:
            env = var["name"]
            if env == "VCSTREAM_CONFIG" or env in referenced:
                continue
            assert env.startswith("VCSTREAM_"), f"{name}: {env} is read by nothing"
            # a VCSTREAM_ override must change the settings, or it names no real key
            with monkeypatch.context() as scoped:
                with_it = settings_of(deployment, tmp_path, scoped).model_dump()
            with monkeypatch.context() as scoped:
                without = settings_of(without_env(deployment, env), tmp_path, scoped).model_dump()
            assert with_it != without, f"{name}: {env} changes no setting"


def test_every_fromenv_secret_is_provided_where_it_is_needed() -> None:
    producer = deployments()["vcstream-producer"]
    names = {var["name"] for var in container(producer)["env"]}
    referenced = set(re.findall(r"fromEnv:\s*(\w+)", config_files()["producer.yaml"]))
    assert referenced <= names
    assert not re.findall(r"fromEnv", config_files()["vcstream.yaml"])


def test_probes_and_scrape_annotations_use_the_metrics_port(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, deployment in deployments().items():
        with monkeypatch.context() as scoped:
            settings = settings_of(deployment, tmp_path, scoped)
        port = settings.metrics.port
        spec = container(deployment)
        ports = {p["name"]: p["containerPort"] for p in spec["ports"]}
        # the gateway also serves its own HTTP port, the one its Service targets
        served = {"http": settings.gateway.port} if spec["args"] == ["gateway"] else {}
        assert ports == {"metrics": port, **served}, name
        # restarts only for a stuck process; a target or Kafka down is readiness (issue 15)
        paths = {"startupProbe": "/livez", "readinessProbe": "/readyz", "livenessProbe": "/livez"}
        for probe, path in paths.items():
            http = spec[probe]["httpGet"]
            assert http["path"] == path and http["port"] == "metrics", (name, probe)
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(port), name
        assert annotations["prometheus.io/path"] == "/metrics", name


def test_containers_run_as_non_root_with_writable_paths_on_volumes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, deployment in deployments().items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        spec = container(deployment)
        assert spec["securityContext"]["readOnlyRootFilesystem"] is True, name
        mounted = [Path(m["mountPath"]) for m in spec["volumeMounts"]]
        with monkeypatch.context() as scoped:
            settings = settings_of(deployment, tmp_path, scoped)
        if spec["args"] == ["streams", "worker"]:
            assert Path(settings.streams.data_dir) in mounted
        if spec["args"] == ["sink", "audit"]:
            assert settings.sinks.audit.files.directory in mounted
            claims = {
                v["persistentVolumeClaim"]["claimName"]
                for v in pod["volumes"]
                if "persistentVolumeClaim" in v
            }
            assert claims <= {doc["metadata"]["name"] for doc in resources("PersistentVolumeClaim")}
        for vcenter in settings.vcenters:
            if vcenter.ca_file is not None:
                assert any(vcenter.ca_file.is_relative_to(path) for path in mounted), name


def test_strimzi_topics_have_the_layout_the_code_expects(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VCENTER_PASSWORD", "placeholder")
    (tmp_path / "vcstream.yaml").write_text(config_files()["vcstream.yaml"])
    # processors' outputs too: the worker writes them, and Strimzi creates every topic
    expected = {spec.name: spec for spec in every_topic(load_settings(tmp_path / "vcstream.yaml"))}
    assert "vcenter.vm-power" in expected  # the example processor runs unless disabled
    topics = {doc["spec"]["topicName"]: doc for doc in resources("KafkaTopic")}
    assert set(topics) == set(expected)
    for name, spec in expected.items():
        manifest = topics[name]["spec"]
        assert manifest["partitions"] == spec.partitions, name
        assert manifest["replicas"] == spec.replication_factor, name
        config = {key: str(value) for key, value in manifest.get("config", {}).items()}
        wanted = spec.new_topic().config
        assert {k: v for k, v in config.items() if k not in BROKER_SIDE_TOPIC_CONFIG} == wanted, (
            name
        )
        assert topics[name]["metadata"]["labels"]["strimzi.io/cluster"]


def test_sinks_read_only_topics_that_exist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    topics = {doc["spec"]["topicName"] for doc in resources("KafkaTopic")}
    for name, deployment in deployments().items():
        with monkeypatch.context() as scoped:
            settings = settings_of(deployment, tmp_path, scoped)
        for sink in (settings.sinks.knative, settings.sinks.slack, settings.sinks.audit):
            if sink is not None and sink.topics is not None:
                assert set(sink.topics) <= topics, name


def test_knative_trigger_filters_alarm_status_changes_on_the_broker_the_sink_feeds() -> None:
    [trigger] = resources("Trigger")
    assert trigger["spec"]["filter"]["attributes"]["type"] == (
        "com.vmware.vsphere.AlarmStatusChangedEvent.v0"
    )
    [broker] = resources("Broker")
    assert trigger["spec"]["broker"] == broker["metadata"]["name"]
    url = yaml.safe_load(config_files()["vcstream.yaml"])["sinks"]["knative"]["url"]
    namespace = broker["metadata"]["namespace"]
    assert url.endswith(f"/{namespace}/{broker['metadata']['name']}")


def test_the_gateway_service_reaches_the_gateway_port() -> None:
    [service] = [s for s in resources("Service") if s["metadata"]["name"] == "vcstream-gateway"]
    gateway = deployments()["vcstream-gateway"]
    labels = gateway["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]


def test_prometheus_finds_pods_by_the_labels_and_annotations_they_carry() -> None:
    [monitor] = resources("PodMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    for name, deployment in deployments().items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), name
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    scrape = yaml.safe_load((K8S / "monitoring" / "prometheus-scrape.yml").read_text())
    [job] = scrape["scrape_configs"]
    kept = [rule for rule in job["relabel_configs"] if rule.get("action") == "keep"]
    assert any("prometheus_io_scrape" in rule["source_labels"][0] for rule in kept)
