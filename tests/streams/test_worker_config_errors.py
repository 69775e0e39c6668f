"""A processor the configuration names but discovery cannot find is a configuration
error: the worker exits 2 naming it, as for a bad key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from devenv import LocalKafka
from devenv.process import REPO

pytestmark = pytest.mark.integration


def test_worker_exits_2_on_an_unknown_name_in_disabled(kafka: LocalKafka, tmp_path: Path) -> None:
    path = tmp_path / "disabled.yaml"
    path.write_text(
        f"kafka: {{bootstrapServers: '{kafka.bootstrap_servers}'}}\n"
        "streams:\n  processors:\n    disabled: [vm_powr]\n"
        "metrics: {enabled: false}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "cli", "streams", "worker", "--config", str(path)],
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "configuration error" in done.stderr and "vm_powr" in done.stderr


def test_topics_create_exits_2_on_an_unknown_name_in_disabled(tmp_path: Path) -> None:
    # discovery runs before any connection: no broker is needed to be refused
    from typer.testing import CliRunner

    from cli import app

    path = tmp_path / "disabled.yaml"
    path.write_text(
        "kafka: {bootstrapServers: '127.0.0.1:9'}\nstreams: {processors: {disabled: [x]}}\n"
    )
    result = CliRunner().invoke(app, ["topics", "create", "-c", str(path)])
    assert result.exit_code == 2
    assert "disabled names no processor: x" in result.output
