"""The package installs and runs from anywhere: the wheel built from exactly what the
Dockerfile copies, installed into a fresh venv outside the source tree, runs every role
(producer, streams worker, each sink, replay, the audit commands, `config check` on the
compose and Kubernetes configurations) against a real broker and vcsim from there.

The fresh venv gets the wheel alone (`--no-deps`); its dependencies come from the
project's `.venv` through a `.pth` line, so CI downloads nothing twice and the test takes
seconds, not minutes. The `.pth` adds a plain path: the `.venv`'s editable install of
the checkout (a `.pth` hook there) is not run, so nothing of the tree can be imported;
`test_installed_modules_come_from_the_venv_not_the_tree` checks it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devenv import LocalKafka, LocalVcsim
from devenv.pipeline import LocalPipeline, local_config
from devenv.process import free_port, wait_until
from devenv.receivers import CloudEventsDisplay, SlackConsole
from tests.deploy.test_compose import CONFIG as COMPOSE_CONFIG
from tests.deploy.test_kubernetes import config_files
from tests.e2e.test_local_pipeline import ENRICHED_ALARM, enriched_alarms, make_events

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "Dockerfile"
SHIPPED = ("cli", "vcstream", "producer", "streams", "sinks", "schemas", "replay", "gateway")
TOOLING = ("devenv", "tests", "bench")


def build_stage_copies() -> list[str]:
    """The sources the Dockerfile's build stage copies from the context."""
    build_stage = re.split(r"^FROM ", DOCKERFILE.read_text(), flags=re.MULTILINE)[1]
    copied: list[str] = []
    for line in build_stage.splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            copied += line.split()[1:-1]
    return copied


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # a copy of what the image's build stage sees: a file the wheel needs but the
    # Dockerfile does not copy fails here, not in a Docker build
    source = tmp_path_factory.mktemp("context")
    for name in build_stage_copies():
        tracked = subprocess.run(
            ["git", "ls-files", "-z", "--", name], cwd=REPO, check=True, capture_output=True
        ).stdout.decode()
        for path in filter(None, tracked.split("\0")):
            target = source / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes((REPO / path).read_bytes())
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"),
            *("--wheel-dir", str(out), str(source)),
        ],
        check=True,
        timeout=300,
    )
    [built] = out.glob("vcstream-*.whl")
    return built


@dataclass
class Installed:
    venv: Path
    outside: Path  # the working directory of every command: no checkout anywhere above

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def vcstream(self) -> Path:
        return self.venv / "bin" / "vcstream"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VCSTREAM_"))}
        return {**env, **extra}

    def run(self, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.vcstream), *args],
            cwd=self.outside,
            env=self.env(**extra_env),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    venv = tmp_path_factory.mktemp("venv")
    outside = tmp_path_factory.mktemp("outside")
    assert not venv.is_relative_to(REPO) and not outside.is_relative_to(REPO)
    subprocess.run(
        [sys.executable, "-m", "venv", "--clear", "--without-pip", str(venv)], check=True
    )
    python = venv / "bin" / "python"
    # the wheel before the dependencies' path: pip then sees no other vcstream to replace
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "--python", str(python), "install", "-q"),
            *("--no-deps", "--no-compile", str(wheel)),
        ],
        check=True,
        timeout=300,
    )
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(purelib) / "vcstream-test-dependencies.pth").write_text(
        sysconfig.get_path("purelib") + "\n"
    )
    return Installed(venv, outside)


def test_wheel_holds_every_schema_and_no_dev_tooling(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    schemas = {str(p.relative_to(REPO)) for p in (REPO / "schemas").rglob("*.avsc")}
    assert any(name.startswith("schemas/history/") for name in schemas)
    assert schemas <= names, schemas - names
    assert {name.split("/")[0] for name in names if name.endswith(".py")} == set(SHIPPED)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "vcstream = cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_installed_modules_come_from_the_venv_not_the_tree(installed: Installed) -> None:
    probe = (
        "import importlib, json, sys\n"
        "from schemas.avro import history\n"
        f"mods = {list(SHIPPED)!r}\n"
        "files = {m: importlib.import_module(m).__file__ for m in mods}\n"
        "tooling = [m for m in " + repr(list(TOOLING)) + " if importlib.util.find_spec(m)]\n"
        "print(json.dumps({'files': files, 'tooling': tooling,\n"
        "    'history': [v.version for v in history('audit_record')]}))\n"
    )
    result = subprocess.run(
        [str(installed.python), "-c", probe],
        cwd=installed.outside,
        env=installed.env(),
        capture_output=True,
        text=True,
        check=True,
    )
    found = json.loads(result.stdout)
    for module, file in found["files"].items():
        assert Path(file).is_relative_to(installed.venv), (module, file)
    assert found["tooling"] == []
    assert "v1" in found["history"]
    # every dependency the wheel declares is there, at a version it accepts
    check = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(installed.python), "check"],
        capture_output=True,
        text=True,
        check=False,
    )
    problems = [line for line in check.stdout.splitlines() if line.startswith("vcstream ")]
    assert problems == [], check.stdout


def test_config_check_passes_on_the_compose_and_kubernetes_configurations(
    installed: Installed,
) -> None:
    for name, text in config_files().items():
        (installed.outside / f"k8s-{name}").write_text(text)
    configs = [COMPOSE_CONFIG, *sorted(installed.outside.glob("k8s-*.yaml"))]
    assert len(configs) == 3
    for config in configs:
        result = installed.run("config", "check", "-c", str(config), VCENTER_PASSWORD="placeholder")
        assert result.returncode == 0, (config, result.stderr)
        assert "bootstrapServers" in result.stdout


def test_a_bad_configuration_exits_2_from_the_installed_command(installed: Installed) -> None:
    bad = installed.outside / "bad.yaml"
    bad.write_text("kafka: {bootstrapServerz: x}\n")
    result = installed.run("config", "check", str(bad))
    assert result.returncode == 2
    assert "bootstrapServerz" in result.stderr


@pytest.fixture
def installed_pipeline(
    installed: Installed,
    kafka_factory: Callable[..., LocalKafka],
    vcsim_factory: Callable[..., LocalVcsim],
    tmp_path: Path,
) -> Iterator[tuple[LocalPipeline, CloudEventsDisplay, SlackConsole, LocalVcsim]]:
    kafka = kafka_factory()
    vcsim = vcsim_factory()
    display = CloudEventsDisplay(free_port(), None)
    slack = SlackConsole(free_port(), None)
    display.start()
    slack.start()
    workdir = installed.outside / tmp_path.name
    config = local_config(kafka, vcsim, workdir, display.url, slack.url)
    pipeline = LocalPipeline(
        workdir,
        LocalPipeline.write_config(workdir, config),
        env=installed.env(VCSIM_PASSWORD=vcsim.password),
        command=[str(installed.vcstream)],
        cwd=installed.outside,
    )
    try:
        pipeline.start()  # `vcstream topics create` first, as the compose topic-init job
        pipeline.wait_healthy(timeout=180)
        yield pipeline, display, slack, vcsim
    finally:
        pipeline.stop()
        display.stop()
        slack.stop()


@pytest.mark.integration
@pytest.mark.slow
def test_every_role_runs_from_the_installed_package(
    installed: Installed,
    installed_pipeline: tuple[LocalPipeline, CloudEventsDisplay, SlackConsole, LocalVcsim],
) -> None:
    pipeline, display, slack, vcsim = installed_pipeline
    config = str(pipeline.config_path)
    password = {"VCSIM_PASSWORD": vcsim.password}  # the file names it; every command loads it
    vm_name, alarm_name = make_events(vcsim)

    # producer → streams (enrichment needs the schema-backed alarm definitions) → knative
    wait_until(lambda: bool(enriched_alarms(display)), 120, "an enriched alarm at Knative")
    assert enriched_alarms(display)[0].get_data()["AlarmInfo"]["Name"] == alarm_name
    wait_until(
        lambda: any(alarm_name in json.dumps(m) for m in slack.received), 120, "a Slack message"
    )

    def audited() -> set[str]:
        result = installed.run("audit", "query", "--config", config, **password)
        assert result.returncode == 0, result.stderr
        rows = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
        return {row["event"]["type"] for row in rows}  # each row: where, and the event

    wait_until(
        lambda: {"com.vmware.vsphere.VmPoweredOffEvent.v0", ENRICHED_ALARM} <= audited(),
        120,
        "audit records",
    )
    pipeline.stop()
    exits = {role: child.returncode for role, child in pipeline.processes.items()}
    assert exits == dict.fromkeys(exits, 0), exits

    verify = installed.run("audit", "verify", "--config", config, **password)
    assert verify.returncode == 0, verify.stdout + verify.stderr

    replayed = installed.outside / "replayed.jsonl"
    replay = installed.run(
        "replay", "--config", config, "--topic", "vcenter.events", "--from-beginning",
        "--to", f"file:{replayed}", "--state", str(installed.outside / "replay-state.json"),
        **password,
    )  # fmt: skip
    assert replay.returncode == 0, replay.stderr
    lines = replayed.read_text().splitlines()
    assert any(re.search(rf'"{re.escape(vm_name)}"', line) for line in lines)
