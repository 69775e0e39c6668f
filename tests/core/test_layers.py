"""Arrows point one way (CONTRIBUTING.md, "Layers"): every import of a shipped package,
at module level or inside a function, goes to its own layer or one below it."""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# package → the project's packages it may import (itself included)
CORE = {"vcstream"}
ALLOWED: dict[str, set[str]] = {
    "vcstream": CORE,
    "schemas": {"schemas", *CORE},
    "producer": {"producer", "schemas", *CORE},
    "streams": {"streams", "schemas", *CORE},
    "sinks": {"sinks", "schemas", *CORE},
    # replay feeds the sinks it replays into
    "replay": {"replay", "sinks", "schemas", *CORE},
    "gateway": {"gateway", "schemas", *CORE},
    "cli": {"cli", "producer", "streams", "sinks", "replay", "gateway", "schemas", *CORE},
}
# in the repository, never in the wheel: nothing shipped may import them
TOOLING = {"devenv", "bench", "tests"}
PROJECT = set(ALLOWED) | TOOLING


def imported(path: Path) -> Iterator[tuple[int, str]]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def violations(root: Path, allowed: dict[str, set[str]]) -> list[str]:
    found = []
    for package, may in sorted(allowed.items()):
        for path in sorted((root / package).rglob("*.py")):
            for line, module in imported(path):
                top = module.split(".")[0]
                if top in PROJECT and top not in may:
                    where = path.relative_to(root)
                    found.append(f"{where}:{line} imports {module} ({package} → {top})")
    return found


def test_no_shipped_module_imports_a_layer_above_it_or_dev_tooling() -> None:
    assert violations(REPO, ALLOWED) == []


def test_the_layers_name_exactly_the_shipped_packages() -> None:
    # a new top-level package must be given its place here before it can ship
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {pattern.rstrip("*") for pattern in include} == set(ALLOWED)
    assert not TOOLING & set(ALLOWED)


def test_an_import_from_the_core_up_into_a_role_is_reported(tmp_path: Path) -> None:
    (tmp_path / "vcstream").mkdir()
    (tmp_path / "vcstream" / "settings.py").write_text(
        "def late():\n    from sinks.runtime import run\n    return run\n"
    )
    (tmp_path / "producer").mkdir()
    (tmp_path / "producer" / "app.py").write_text("import streams.api\nimport devenv\n")
    assert violations(tmp_path, {"vcstream": CORE, "producer": ALLOWED["producer"]}) == [
        "producer/app.py:1 imports streams.api (producer → streams)",
        "producer/app.py:2 imports devenv (producer → devenv)",
        "vcstream/settings.py:2 imports sinks.runtime (vcstream → sinks)",
    ]


def test_the_core_knows_no_faust() -> None:
    # Faust's view of the Kafka settings lives with the worker (streams.faust_kafka)
    found = [
        f"{path.relative_to(REPO)}:{line} imports {module}"
        for path in sorted((REPO / "vcstream").rglob("*.py"))
        for line, module in imported(path)
        if module.split(".")[0] in {"faust", "mode", "aiokafka"}
    ]
    assert found == []
