"""deploy/helm/vcstream: `helm template` with the chart's defaults renders the resources of
deploy/kubernetes (kustomize) one for one, so the tests of those manifests hold for the
chart too; the values an operator sets (a private registry, vCenters, own Secrets, sinks
off) change what they should, and every configuration rendered loads as the roles load it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from devenv.process import cache_dir
from tests.deploy.test_kubernetes import K8S
from vcstream.settings import load_settings

CHART = K8S.parent / "helm" / "vcstream"
HELM_LABELS = {"helm.sh/chart", "app.kubernetes.io/managed-by"}


def helm() -> str:
    # deploy/local/install.sh builds it into the cache (go install), as vcsim
    found = cache_dir() / "bin" / "helm"
    return str(found) if found.exists() else shutil.which("helm") or str(found)


def render(*values: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [helm(), "template", "vcstream", str(CHART), "--namespace", "vcstream", *values],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """The document without what only Helm or only kustomize adds; config files parsed."""
    doc = yaml.safe_load(yaml.safe_dump(doc))  # a deep copy
    metadata = doc["metadata"]
    metadata.pop("namespace", None)  # kustomize sets it from kustomization.yaml
    labels = metadata.get("labels", {})
    for label in HELM_LABELS:
        labels.pop(label, None)
    if doc["kind"] == "ConfigMap":
        doc["data"] = {name: yaml.safe_load(text) for name, text in doc["data"].items()}
    return doc


def kustomize_resources() -> dict[tuple[str, str], dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    found = {}
    for name in kustomization["resources"]:
        for doc in yaml.safe_load_all((K8S / name).read_text()):
            # helm install --create-namespace makes the Namespace
            if doc and doc["kind"] != "Namespace":
                found[(doc["kind"], doc["metadata"]["name"])] = comparable(doc)
    return found


def by_name(docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in docs}


def test_chart_defaults_render_the_kustomize_resources() -> None:
    rendered = {key: comparable(doc) for key, doc in by_name(render()).items()}
    expected = kustomize_resources()
    assert sorted(rendered) == sorted(expected)
    for key, doc in expected.items():
        assert rendered[key] == doc, key


def test_chart_renders_what_an_operator_sets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "image": {"repository": "registry.example.com/vmware/vcstream", "tag": "0.1.0-rc1"},
                "imagePullSecrets": [{"name": "registry-credentials"}],
                "vcenters": [
                    {"name": "vc01", "url": "https://vc01.example.com/sdk", "username": "a"},
                    {"name": "vc02", "url": "https://vc02.example.com/sdk", "username": "b"},
                ],
                "secrets": {"create": False},
                "sinks": {"slack": {"enabled": False}},
                "kafka": {"bootstrapServers": "kafka.example:9093", "strimziCluster": ""},
                "config": {"sinks": {"knative": {"typeFormat": "event-router"}}},
            }
        )
    )
    docs = by_name(render("--values", str(values)))
    kinds = {kind for kind, _ in docs}
    assert "Secret" not in kinds and "KafkaTopic" not in kinds
    deployments = {name: doc for (kind, name), doc in docs.items() if kind == "Deployment"}
    assert "vcstream-sink-slack" not in deployments and "vcstream-producer" in deployments
    for deployment in deployments.values():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["imagePullSecrets"] == [{"name": "registry-credentials"}]
        [container] = pod["containers"]
        assert container["image"] == "registry.example.com/vmware/vcstream:0.1.0-rc1"

    monkeypatch.setenv("VCENTER_PASSWORD", "placeholder")
    files = docs[("ConfigMap", "vcstream-config")]["data"]
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    producer = load_settings(tmp_path / "producer.yaml")
    assert [v.name for v in producer.vcenters] == ["vc01", "vc02"]
    shared = load_settings(tmp_path / "vcstream.yaml")
    assert shared.kafka.bootstrap_servers == "kafka.example:9093"
    assert shared.sinks.knative is not None and shared.sinks.knative.type_format == "event-router"


def test_chart_without_the_gateway_renders_none_of_its_resources() -> None:
    with_it = by_name(render())
    without = by_name(render("--set", "gateway.enabled=false"))
    gateway = {
        ("Deployment", "vcstream-gateway"),
        ("Service", "vcstream-gateway"),
        ("Secret", "vcstream-gateway"),
        ("KafkaTopic", "vcstream-webhook"),
    }
    assert gateway <= set(with_it)
    assert set(without) == set(with_it) - gateway


def test_chart_passes_helm_lint() -> None:
    result = subprocess.run(
        [helm(), "lint", "--strict", str(CHART)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
