"""docker-compose.yml is valid for a real compose implementation, and its vcstream
services run commands that exist (the same ones the integration tests run)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from vcstream.cli import app
from vcstream.settings import load_settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"


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


def test_compose_file_is_valid() -> None:
    result = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config", "-q"],
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr


def vcstream_services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in config["services"].items()
        if service.get("image") == "vcstream:local"
    }


def test_every_vcstream_service_runs_an_existing_command() -> None:
    services = vcstream_services(compose_config())
    assert "topic-init" in services
    runner = CliRunner()
    for name, service in services.items():
        command = service["command"]
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0, f"{name}: `vcstream {' '.join(command)}` {result.output}"


def test_compose_configuration_file_is_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VCENTER_PASSWORD", "from-compose")
    settings = load_settings(REPO / "deploy" / "compose" / "vcstream.yaml")
    assert settings.kafka.bootstrap_servers == "kafka:9092"
    assert settings.vcenters[0].url == "https://vcsim:8989/sdk"


def test_kafka_service_is_kraft_with_a_volume_and_transactions_enabled() -> None:
    kafka = compose_config()["services"]["kafka"]
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    assert any("/var/lib/kafka/data" in str(volume) for volume in kafka["volumes"])
    assert kafka["image"].startswith("apache/kafka:4.")
