"""`vcstream --help` and every command's help, or a usage error, answer without loading
what only a running command needs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# the settings models with pydantic-settings and PyYAML (~160 ms), and asyncio (~25 ms):
# typer renders help without them. (typer itself imports pydantic to coerce parameters,
# so pydantic is not in this list.)
RUN_ONLY = ("vcstream.settings", "vcstream.logging", "pydantic_settings", "yaml", "asyncio")

COMMANDS = [
    [],
    ["config"],
    ["config", "check"],
    ["topics", "create"],
    ["produce"],
    ["streams", "worker"],
    ["sink"],
    ["replay"],
    ["gateway"],
    ["audit", "verify"],
    ["audit", "query"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "vcstream")
def test_help_loads_no_settings_and_no_event_loop(command: list[str]) -> None:
    code = (
        "import sys\n"
        "from cli import app\n"
        "try:\n"
        f"    app({[*command, '--help']!r}, prog_name='vcstream')\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        f"loaded = sorted(m for m in sys.modules if m.startswith({RUN_ONLY!r}))\n"
        "print(loaded, file=sys.stderr)\n"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True
    )
    assert found.returncode == 0, found.stderr
    assert found.stderr.strip() == "[]"


def test_a_usage_error_loads_no_settings() -> None:
    code = (
        "import sys\n"
        "from cli import app\n"
        "try:\n"
        "    app(['replay', '--workers', '2'], prog_name='vcstream')\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 2, exc.code\n"
        f"print(sorted(m for m in sys.modules if m.startswith({RUN_ONLY!r})), file=sys.stderr)\n"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True
    )
    assert found.returncode == 0, found.stderr
    assert found.stderr.strip().splitlines()[-1] == "[]"


def test_a_command_does_not_look_for_pydantic_plugins(tmp_path: Path) -> None:
    """pydantic's search of every installed distribution for plugins is left out of the
    command's start-up; a user's own choice still decides."""
    config = tmp_path / "vcstream.yaml"
    config.write_text("kafka:\n  bootstrapServers: localhost:1\n")
    code = (
        "import importlib.metadata, sys\n"
        "searches = []\n"
        "every = importlib.metadata.distributions\n"
        "def counted(*args, **kwargs):\n"
        "    searches.append(1)\n"
        "    return every(*args, **kwargs)\n"
        "importlib.metadata.distributions = counted\n"
        "from cli import app\n"
        "try:\n"
        f"    app(['config', 'check', '--config', {str(config)!r}], prog_name='vcstream')\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        "print(len(searches), file=sys.stderr)\n"
    )

    def searches(**env: str) -> int:
        found = subprocess.run(
            [sys.executable, "-c", code],
            check=False,
            capture_output=True,
            text=True,
            env={k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"} | env,
        )
        assert found.returncode == 0, found.stderr
        return int(found.stderr.strip().splitlines()[-1])

    assert searches() == 0
    assert searches(PYDANTIC_DISABLE_PLUGINS="") > 0  # plugins asked for: searched
