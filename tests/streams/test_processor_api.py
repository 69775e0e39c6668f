"""The processor API and its unit-test helper, without Kafka."""

from __future__ import annotations

import sys
import textwrap
from datetime import timedelta, timezone

import pytest

import schemas
from schemas.codec import with_changes
from schemas.vsphere import derived_id
from streams.api import Processor, ProcessorOutputError, data_of, processor
from streams.discovery import DiscoveryError, discover
from streams.processors.vm_power import vm_power
from streams.testing import run, vsphere_event
from vcstream.settings.streams import ProcessorsSettings

VM = {"Name": "web01", "Vm": {"Type": "VirtualMachine", "Value": "vm-42"}}
HOST = {"Name": "esx01", "Host": {"Type": "HostSystem", "Value": "host-19"}}


def test_example_vm_power_processor_with_the_helper():
    on = vsphere_event("VmPoweredOnEvent", {"Vm": VM, "Host": HOST, "UserName": "root"})
    off = vsphere_event("VmPoweredOffEvent", {"Vm": VM, "Host": HOST})
    unrelated = vsphere_event("HostConnectedEvent", {"Host": HOST})

    outputs = run(vm_power, on, unrelated, off)

    assert [data_of(out)["powerState"] for out in outputs] == ["poweredOn", "poweredOff"]
    first = outputs[0]
    assert data_of(first)["vm"] == "web01"
    assert data_of(first)["moref"] == "vm-42"
    assert data_of(first)["host"] == "esx01"
    assert data_of(first)["user"] == "root"
    assert first.get_type() == "com.vmware.vsphere.vcstream.VmPowerStateChanged.v0"
    assert first.get_id() == derived_id(on.get_id(), "vm_power", 0)
    assert first.get_source() == on.get_source()
    assert vm_power.output == "vcenter.vm-power"


def test_output_ids_are_derived_from_input_whatever_the_function_sets():
    @processor(output="out")
    def twice(event):
        return [event, event]

    event = vsphere_event("VmPoweredOnEvent")
    first = run(twice, event)
    again = run(twice, event)
    assert [e.get_id() for e in first] == [e.get_id() for e in again]
    assert len({e.get_id() for e in first} | {event.get_id()}) == 3


def test_records_are_what_the_sdk_encodes_of_the_processors_events():
    """The worker's path (the derived id written into the encoded record) gives the
    records `schemas.encode` makes of `processor(event)`, byte for byte, header order
    included; a `partitionkey` attribute (which the id's copy drops) is dropped too."""

    @processor(output="out")
    def several(event):
        keyed = with_changes(event, type="com.example.Keyed.v0", partitionkey="pk")
        offset = timezone(timedelta(hours=2))  # encode writes it as UTC
        local = with_changes(
            event, type="com.example.Local.v0", time=event.get_time().astimezone(offset)
        )
        return [event, keyed, local, with_changes(event, data={"n": 1}, subject="x")]

    on = vsphere_event("VmPoweredOnEvent", {"Vm": VM, "Host": HOST, "UserName": "root"})
    for item, event in ((vm_power, on), (several, on)):
        for key in (b"vc/VirtualMachine:vm-42", None):
            expected = [(out.get_type(), schemas.encode(out, key)) for out in item(event)]
            assert item.records(event, key) == expected
            assert len(expected) == (1 if item is vm_power else 4)
    [(_, keyed)] = [(t, r) for t, r in several.records(on, None) if t.endswith("Keyed.v0")]
    assert "ce_partitionkey" not in dict(keyed.headers)


def test_none_drops_and_filters_skip():
    @processor(output="out", where=[{"field": "To", "equals": "red"}])
    def drop_all(event):
        return None

    assert run(drop_all, vsphere_event("AlarmStatusChangedEvent", {"To": "red"})) == []


def test_processor_returning_something_else_is_an_error():
    @processor(output="out")
    def broken(event):
        return {"not": "an event"}

    with pytest.raises(ProcessorOutputError, match="broken returned dict, not a CloudEvent"):
        run(broken, vsphere_event("VmPoweredOnEvent"))


def test_processor_needs_an_output_topic():
    with pytest.raises(ValueError, match="needs an output topic"):
        processor(output="")


def test_discovery_finds_the_example_and_configured_packages(tmp_path, monkeypatch):
    package = tmp_path / "acme_processors"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "alarms.py").write_text(
        textwrap.dedent(
            """
            from streams.api import data_of, processor

            @processor(output="acme.alarms", types=["*Alarm*"])
            def acme_alarms(event):
                return event
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    found = discover(ProcessorsSettings(packages=["acme_processors"]))
    assert {p.name: p.output for p in found if isinstance(p, Processor)} == {
        "vm_power": "vcenter.vm-power",
        "acme_alarms": "acme.alarms",
    }
    assert [p.name for p in discover(ProcessorsSettings(disabled=["vm_power"]))] == []
    sys.modules.pop("acme_processors.alarms", None)
    sys.modules.pop("acme_processors", None)


def test_discovery_errors_name_the_package_or_module(tmp_path, monkeypatch):
    with pytest.raises(DiscoveryError, match="'no_such_pkg' cannot be imported"):
        discover(ProcessorsSettings(packages=["no_such_pkg"]))
    broken = tmp_path / "broken_processors"
    broken.mkdir()
    (broken / "__init__.py").write_text("")
    (broken / "bad.py").write_text("raise RuntimeError('oops')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(DiscoveryError, match=r"broken_processors\.bad failed to import"):
        discover(ProcessorsSettings(packages=["broken_processors"]))


def test_two_processors_with_one_name_are_refused(tmp_path, monkeypatch):
    twins = tmp_path / "twin_processors"
    twins.mkdir()
    (twins / "__init__.py").write_text("")
    body = "from streams.api import data_of, processor\n\n@processor(output='o', name='vm_power')\n"
    (twins / "a.py").write_text(body + "def a(event):\n    return event\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(DiscoveryError, match="two processors are named 'vm_power'"):
        discover(ProcessorsSettings(packages=["twin_processors"]))


def test_an_unknown_name_in_disabled_is_refused_naming_what_exists():
    with pytest.raises(DiscoveryError, match=r"disabled names no processor: vm_powr \(found: "):
        discover(ProcessorsSettings(disabled=["vm_power", "vm_powr"]))
