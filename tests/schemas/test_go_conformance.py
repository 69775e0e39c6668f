"""Our JSON for vCenter events equals the Go encoding VEBA's vCenter source emits.

A Go program (tests/go/vceventsjson, govmomi pinned to the version sources-for-knative
uses) and pyVmomi read the same events from one vcsim; every event must match field
for field. Times are compared as instants at microsecond precision: vcsim stamps
nanoseconds, which Go keeps and Python's datetime (hence pyVmomi) cannot.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from pyVmomi import vim

from devenv import LocalVcsim
from devenv.process import cache_dir
from schemas.vmodl_json import VEBA_VMODL_VERSION, event_class_name, to_go_json
from tests.schemas.vcsim_activity import connected, make_events

pytestmark = pytest.mark.integration

GO_PROGRAM = Path(__file__).resolve().parents[1] / "go" / "vceventsjson"
_RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")

EXPECTED_KINDS = {
    "VmPoweredOnEvent",
    "VmPoweredOffEvent",
    "VmSuspendedEvent",
    "VmReconfiguredEvent",
    "VmBeingCreatedEvent",
    "VmCreatedEvent",
    "VmRemovedEvent",
    "UserLoginSessionEvent",
    "UserLogoutSessionEvent",
    "EventEx",
    "AlarmStatusChangedEvent",
    "GeneralUserEvent",
    "TaskEvent",
    "EnteredMaintenanceModeEvent",
    "ExitMaintenanceModeEvent",
}


@pytest.fixture(scope="module")
def go_binary() -> Path:
    """The Go program as deploy/local/install.sh builds it (built here if missing)."""
    binary = cache_dir() / "bin" / GO_PROGRAM.name
    if not binary.exists():
        subprocess.run(["go", "build", "-o", str(binary), "."], cwd=GO_PROGRAM, check=True)
    return binary


def go_events(binary: Path, sim: LocalVcsim) -> dict[int, dict[str, Any]]:
    argv = [str(binary), "-url", sim.url, "-username", sim.username, "-ca-file", str(sim.ca_file)]
    env = {**os.environ, "VCEVENTS_PASSWORD": sim.password}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    return {line["Event"]["Key"]: line for line in lines}


def python_events(sim: LocalVcsim) -> list[Any]:
    with connected(sim) as si:
        manager = si.RetrieveContent().eventManager
        collector = manager.CreateCollectorForEvents(vim.event.EventFilterSpec())
        collector.RewindCollector()
        events: list[Any] = []
        while page := collector.ReadNextEvents(100):
            events.extend(page)
        collector.DestroyCollector()
        return events


def as_instants(value: Any) -> Any:
    """`value` with every RFC 3339 string replaced by its instant (µs precision)."""
    if isinstance(value, dict):
        return {k: as_instants(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_instants(v) for v in value]
    if isinstance(value, str) and _RFC3339.match(value):
        whole, _, rest = value.partition(".")
        if rest:  # Python parses at most 6 fraction digits: truncate Go's nanoseconds
            digits = re.match(r"\d+", rest)
            assert digits is not None
            value = f"{whole}.{digits.group()[:6]}{rest[digits.end() :]}"
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value


def differences(ours: Any, theirs: Any, path: str = "") -> list[str]:
    """Where two JSON values differ, as readable paths."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        found = [f"{path}.{k}: only ours" for k in ours.keys() - theirs.keys()]
        found += [f"{path}.{k}: only Go's" for k in theirs.keys() - ours.keys()]
        for key in ours.keys() & theirs.keys():
            found += differences(ours[key], theirs[key], f"{path}.{key}")
        return found
    if isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs):
        return [
            d
            for i, (a, b) in enumerate(zip(ours, theirs, strict=True))
            for d in differences(a, b, f"{path}[{i}]")
        ]
    return [] if ours == theirs else [f"{path}: ours {ours!r} != Go's {theirs!r}"]


@pytest.fixture(scope="module")
def recorded(
    tmp_path_factory: pytest.TempPathFactory, go_binary: Path
) -> Iterator[tuple[list[Any], dict[int, dict[str, Any]]]]:
    """The events of one busy vcsim, as pyVmomi objects and as Go printed them."""
    sim = LocalVcsim(tmp_path_factory.mktemp("vcsim")).start()
    try:
        make_events(sim)
        from_python = python_events(sim)
        yield from_python, go_events(go_binary, sim)
    finally:
        sim.stop()


def test_json_equals_go_encoding_for_every_kind_of_event(
    recorded: tuple[list[Any], dict[int, dict[str, Any]]],
) -> None:
    from_python, from_go = recorded
    # Go reads last: it also sees our reader's logout and its own login
    assert {e.key for e in from_python} <= from_go.keys()
    kinds = {event_class_name(e) for e in from_python}
    assert kinds >= EXPECTED_KINDS, f"vcsim did not record {EXPECTED_KINDS - kinds}"
    mismatches: dict[str, list[str]] = {}
    for event in from_python:
        go = from_go[event.key]
        assert go["Class"] == event_class_name(event)
        ours = as_instants(to_go_json(event, VEBA_VMODL_VERSION))
        found = differences(ours, as_instants(go["Event"]))
        if found:
            mismatches[f"{go['Class']} #{event.key}"] = found
    assert not mismatches, json.dumps(mismatches, indent=1)


def test_default_output_is_gos_plus_fields_newer_than_vebas_govmomi(
    recorded: tuple[list[Any], dict[int, dict[str, Any]]],
) -> None:
    from_python, from_go = recorded
    for event in from_python:
        go = as_instants(from_go[event.key]["Event"])
        full = as_instants(to_go_json(event))
        assert full.keys() - go.keys() == {"Tgw", "AuditId"}  # vSphere 9.1's additions
        assert without_keys_absent_from(full, go) == go


def without_keys_absent_from(ours: Any, theirs: Any) -> Any:
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return {k: without_keys_absent_from(v, theirs[k]) for k, v in ours.items() if k in theirs}
    if isinstance(ours, list) and isinstance(theirs, list):
        return [without_keys_absent_from(a, b) for a, b in zip(ours, theirs, strict=True)]
    return ours
