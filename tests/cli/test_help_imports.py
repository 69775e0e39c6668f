"""`vcstream --help` and every command's help, or a usage error, answer without loading
what only a running command needs."""

from __future__ import annotations

import subprocess
import sys

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
