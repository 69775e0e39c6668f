"""`vcstream config check` finds its file as every other command does: -c/--config or
VCSTREAM_CONFIG (the positional FILE still works); two different files are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "vcstream.yaml"
    path.write_text("kafka: {bootstrapServers: 'broker-from-file:9092'}\n")
    return path


def test_config_check_reads_the_file_named_by_the_option(config: Path) -> None:
    result = CliRunner().invoke(app, ["config", "check", "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert "broker-from-file:9092" in result.output


def test_config_check_reads_the_file_named_by_vcstream_config(config: Path) -> None:
    result = CliRunner().invoke(app, ["config", "check"], env={"VCSTREAM_CONFIG": str(config)})
    assert result.exit_code == 0, result.output
    assert "broker-from-file:9092" in result.output


def test_config_check_refuses_two_different_files(config: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    other.write_text("{}\n")
    result = CliRunner().invoke(app, ["config", "check", str(other), "--config", str(config)])
    assert result.exit_code == 2
    assert "two files given" in result.output


def test_an_error_from_an_environment_override_names_the_variable(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VCSTREAM_METRICS__PORT", "eighty")
    result = CliRunner().invoke(app, ["config", "check", "-c", str(config)])
    assert result.exit_code == 2
    assert "metrics.port (from VCSTREAM_METRICS__PORT):" in result.output


def test_an_error_in_the_file_names_only_the_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("metrics: {port: eighty}\n")
    result = CliRunner().invoke(app, ["config", "check", "-c", str(path)])
    assert result.exit_code == 2
    assert "metrics.port: " in result.output and "(from " not in result.output
