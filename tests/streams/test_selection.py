"""Routes and processor inputs: type/subject globs and conditions on data fields."""

from __future__ import annotations

import pytest

from streams.match import Selector
from streams.testing import vsphere_event
from vcstream.settings import ConfigError, load_settings
from vcstream.settings.streams import EventFilter, FieldCondition


def alarm(to: str):
    return vsphere_event("AlarmStatusChangedEvent", {"To": to, "Alarm": {"Name": "CPU"}})


def selector(**spec):
    return Selector.of(EventFilter.model_validate(spec))


def test_type_glob_and_data_predicate_select_red_and_yellow_alarms_only():
    red_or_yellow = selector(
        types=["com.vmware.vsphere.AlarmStatusChangedEvent.v0*"],
        where=[{"field": "To", "in": ["red", "yellow"]}],
    )
    assert red_or_yellow.matches(alarm("red"))
    assert red_or_yellow.matches(alarm("yellow"))
    assert not red_or_yellow.matches(alarm("green"))
    assert not red_or_yellow.matches(vsphere_event("VmPoweredOnEvent", {"To": "red"}))


def test_subject_glob():
    vm_events = selector(subjects=["Vm*Event"])
    assert vm_events.matches(vsphere_event("VmPoweredOnEvent"))
    assert not vm_events.matches(vsphere_event("HostConnectedEvent"))


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"field": "Vm.Name", "equals": "web01"}, True),
        ({"field": "Vm.Name", "equals": "db01"}, False),
        ({"field": "Vm.Name", "matches": "web*"}, True),
        ({"field": "Vm.Name", "notIn": ["db01"]}, True),
        ({"field": "Vm.Name", "notIn": ["web01"]}, False),
        ({"field": "Host", "exists": True}, False),
        ({"field": "Host", "exists": False}, True),
        ({"field": "Vm.Vm.Value", "exists": True}, True),
        ({"field": "Missing.Deep", "equals": None}, False),
        ({"field": "Vm.Name.Deeper", "matches": "*"}, False),
    ],
)
def test_condition_operators_on_nested_fields(condition, expected):
    event = vsphere_event(
        "VmPoweredOnEvent",
        {"Vm": {"Name": "web01", "Vm": {"Type": "VirtualMachine", "Value": "vm-42"}}, "Host": None},
    )
    assert selector(where=[condition]).matches(event) is expected


def test_all_conditions_must_hold():
    event = vsphere_event("AlarmStatusChangedEvent", {"To": "red", "From": "red"})
    both = selector(where=[{"field": "To", "equals": "red"}, {"field": "From", "equals": "green"}])
    assert not both.matches(event)


def test_condition_needs_exactly_one_operator():
    with pytest.raises(ValueError, match="exactly one of equals, in, notIn, matches, exists"):
        FieldCondition.model_validate({"field": "To"})
    with pytest.raises(ValueError, match=r"got equals, in"):
        FieldCondition.model_validate({"field": "To", "equals": "red", "in": ["red"]})


def test_bad_route_in_config_file_names_the_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "streams:\n  routes:\n    - name: x\n      topic: t\n      where: [{field: To, is: red}]\n"
    )
    with pytest.raises(ConfigError, match=r"streams\.routes\[0\]\.where\[0\]\.is: unknown key"):
        load_settings(path)


def test_default_routes_alarms_turning_red_or_yellow_and_everything_to_audit():
    settings = load_settings(None)
    routes = settings.streams.effective_routes("alarms-topic", "audit-topic")
    assert [(r.name, r.topic) for r in routes] == [
        ("alarms", "alarms-topic"),
        ("audit", "audit-topic"),
    ]
    alarms, audit = (Selector.of(r) for r in routes)
    assert alarms.matches(alarm("red")) and not alarms.matches(alarm("green"))
    assert audit.matches(alarm("green")) and audit.matches(vsphere_event("VmPoweredOnEvent"))


def test_audit_subset_is_configurable(tmp_path):
    path = tmp_path / "audit.yaml"
    path.write_text("streams:\n  audit:\n    subjects: ['Vm*']\n")
    routes = load_settings(path).streams.effective_routes("a", "b")
    audit = Selector.of(routes[1])
    assert audit.matches(vsphere_event("VmPoweredOnEvent"))
    assert not audit.matches(alarm("red"))


def test_worker_refuses_a_bad_config_with_exit_2(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "bad.yaml"
    path.write_text("streams:\n  enrichment:\n    waitForDefinition: soon\n")
    done = subprocess.run(
        [sys.executable, "-m", "cli", "streams", "worker", "--config", str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "streams.enrichment.waitForDefinition" in done.stderr


def test_glob_answers_are_remembered_per_string_up_to_a_limit(monkeypatch):
    from streams import match

    monkeypatch.setattr(match, "MEMO_LIMIT", 3)
    globs = match.GlobSet(["com.vmware.vsphere.Vm*", "*.AlarmInfo"])
    texts = ["com.vmware.vsphere.VmPoweredOnEvent.v0", "x.AlarmInfo", "other", "more", "x.y"]
    assert [globs.matches(t) for t in texts] == [True, True, False, False, False]
    assert len(globs._memo) == 3
    # asked again, the remembered and the not remembered answer the same
    assert [globs.matches(t) for t in texts] == [True, True, False, False, False]
    assert match.GlobSet(["*"]).matches("anything")
