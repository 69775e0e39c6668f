"""docker-compose.yml is valid for a real compose implementation (Debian's docker-compose
1.29, as on CI), its vcstream services run the commands the integration tests run, and
the files it mounts (vcstream, Prometheus and Grafana configuration) fit together."""

from __future__ import annotations

import re
import subprocess
import tomllib
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from typer.testing import CliRunner

from cli import app
from devenv.pipeline import ROLES
from vcstream.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
CONFIG = REPO / "deploy" / "compose" / "vcstream.yaml"
PROMETHEUS = REPO / "deploy" / "prometheus" / "compose.yml"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
IMAGE = "vcstream:local"
CONFIG_IN_CONTAINER = "/etc/vcstream/vcstream.yaml"


@cache
def compose_config() -> dict[str, Any]:
    """The file as docker-compose resolves it (anchors, interpolation, defaults)."""
    result = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config"],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("VCENTER_PASSWORD", "from-compose")
    return load_settings(CONFIG)


def vcstream_services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in config["services"].items()
        if service.get("image") == IMAGE
    }


def long_running(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in vcstream_services(config).items() if name != "topic-init"}


def test_compose_file_is_valid() -> None:
    result = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config", "-q"],
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr


def test_every_vcstream_service_runs_an_existing_command() -> None:
    services = vcstream_services(compose_config())
    assert "topic-init" in services
    runner = CliRunner()
    for name, service in services.items():
        command = service["command"]
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0, f"{name}: `vcstream {' '.join(command)}` {result.output}"


def test_compose_runs_every_role_the_local_pipeline_and_its_tests_run() -> None:
    # devenv.pipeline.ROLES is what `./dev run` and the end-to-end test start
    commands = sorted(service["command"] for service in long_running(compose_config()).values())
    assert commands == sorted(ROLES.values())


def test_every_vcstream_service_reads_the_mounted_configuration() -> None:
    for name, service in vcstream_services(compose_config()).items():
        assert service["environment"]["VCSTREAM_CONFIG"] == CONFIG_IN_CONTAINER, name
        mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in service["volumes"]}
        assert Path(mounts[CONFIG_IN_CONTAINER]) == CONFIG, name


def test_compose_configuration_file_is_valid_settings(settings: Settings) -> None:
    assert settings.kafka.bootstrap_servers == "kafka:9092"
    assert settings.vcenters[0].url == "https://vcsim:8989/sdk"
    # the Slack sink is configured only in its own service, from SLACK_WEBHOOK_URL
    assert settings.sinks.slack is None


def test_slack_sink_runs_only_in_its_profile_with_the_webhook_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slack = compose_config()["services"]["sink-slack"]
    assert slack["profiles"] == ["slack"]
    others = [s for n, s in compose_config()["services"].items() if n != "sink-slack"]
    assert all("profiles" not in service for service in others)
    variable = "VCSTREAM_SINKS__SLACK__WEBHOOKURL"
    assert variable in slack["environment"]
    monkeypatch.setenv("VCENTER_PASSWORD", "from-compose")
    monkeypatch.setenv(variable, "https://hooks.slack.invalid/T000/B000/secret")
    settings = load_settings(CONFIG)
    assert settings.sinks.slack is not None
    assert settings.sinks.slack.webhook_url.get_secret_value().endswith("/secret")


def test_knative_sink_delivers_to_the_event_display_service(settings: Settings) -> None:
    services = compose_config()["services"]
    assert settings.sinks.knative is not None
    host = re.match(r"https?://([^:/]+)", settings.sinks.knative.url)
    assert host is not None and host.group(1) in services
    assert "event_display" in services[host.group(1)]["image"]
    assert host.group(1) in services["sink-knative"]["depends_on"]


def test_vcsim_answers_with_the_configured_credentials(settings: Settings) -> None:
    vcsim = compose_config()["services"]["vcsim"]
    command = vcsim["command"]
    vcenter = settings.vcenters[0]
    assert command[command.index("-username") + 1] == vcenter.username
    password = command[command.index("-password") + 1]
    assert password == compose_config()["services"]["producer"]["environment"]["VCENTER_PASSWORD"]
    assert command[command.index("-l") + 1].endswith(f":{urlsplit(vcenter.url).port}")


def test_long_running_roles_are_health_checked_on_the_metrics_port(settings: Settings) -> None:
    for name, service in long_running(compose_config()).items():
        probe = " ".join(service["healthcheck"]["test"])
        # liveness: Docker tools restart an unhealthy container; a target down is not that
        assert f"127.0.0.1:{settings.metrics.port}/livez" in probe, name


def test_roles_start_after_kafka_is_healthy_and_topics_exist() -> None:
    for name, service in long_running(compose_config()).items():
        depends = service["depends_on"]
        assert depends["kafka"]["condition"] == "service_healthy", name
        assert depends["topic-init"]["condition"] == "service_completed_successfully", name
    assert compose_config()["services"]["topic-init"]["restart"] == "no"


def test_kafka_service_is_kraft_with_a_volume_and_transactions_enabled() -> None:
    kafka = compose_config()["services"]["kafka"]
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    assert any("/var/lib/kafka/data" in str(volume) for volume in kafka["volumes"])
    assert kafka["image"].startswith("apache/kafka:4.")
    assert "healthcheck" in kafka


def named_volume_at(service: dict[str, Any], path: Path) -> str | None:
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if Path(target) == path and "/" not in source:
            return str(source)
    return None


def test_audit_files_and_streams_state_live_on_named_volumes(settings: Settings) -> None:
    config = compose_config()
    services = config["services"]
    audit = named_volume_at(services["sink-audit"], settings.sinks.audit.files.directory)
    state = named_volume_at(services["streams"], Path(settings.streams.data_dir))
    assert audit in config["volumes"] and state in config["volumes"]


def test_prometheus_scrapes_every_role_at_its_metrics_port(settings: Settings) -> None:
    scraped = {
        target
        for job in yaml.safe_load(PROMETHEUS.read_text())["scrape_configs"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    roles = {f"{name}:{settings.metrics.port}" for name in long_running(compose_config())}
    assert scraped == roles
    mounts = compose_config()["services"]["prometheus"]["volumes"]
    assert any(Path(volume.split(":")[0]) == PROMETHEUS for volume in mounts)


def test_prometheus_configuration_passes_promtool() -> None:
    # promtool comes with Debian's prometheus package (deploy/local/install.sh)
    result = subprocess.run(
        ["promtool", "check", "config", str(PROMETHEUS)],
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_provisions_the_dashboard_from_prometheus() -> None:
    grafana = compose_config()["services"]["grafana"]
    mounts = {volume.split(":")[1]: Path(volume.split(":")[0]) for volume in grafana["volumes"]}
    provisioning = mounts["/etc/grafana/provisioning"]
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())
    assert datasources["datasources"][0]["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((provisioning / "dashboards" / "vcstream.yaml").read_text())
    dashboards = mounts[providers["providers"][0]["options"]["path"]]
    assert (dashboards / "vcstream.json").is_file()
    assert grafana["depends_on"]["prometheus"]["condition"] == "service_healthy"


def test_image_runs_as_non_root_from_slim_python_and_copies_every_package() -> None:
    text = DOCKERFILE.read_text()
    bases = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert bases and all(base.startswith("python:3.11-slim") for base in bases)
    users = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    for package in {pattern.rstrip("*") for pattern in packages}:
        assert re.search(rf"^COPY {package} {package}$", text, re.MULTILINE), package
    assert re.search(r'^ENTRYPOINT \["vcstream"\]', text, re.MULTILINE)
