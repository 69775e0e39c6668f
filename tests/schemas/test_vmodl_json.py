"""The generic pyVmomi → Go/VEBA JSON converter, on hand-built objects."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pyVmomi import vim, vmodl

from schemas.vmodl_json import event_class_name, go_time, to_go_json

CREATED = datetime(2024, 1, 17, 13, 2, 5, 426999, tzinfo=UTC)


def powered_on() -> vim.event.VmPoweredOnEvent:
    return vim.event.VmPoweredOnEvent(
        key=280034,
        chainId=280032,
        createdTime=CREATED,
        userName="VSPHERE.LOCAL\\Administrator",
        datacenter=vim.event.DatacenterEventArgument(
            name="dc1", datacenter=vim.Datacenter("datacenter-1001")
        ),
        vm=vim.event.VmEventArgument(name="web-01", vm=vim.VirtualMachine("vm-42")),
        ds=vim.event.DatastoreEventArgument(name="ds1", datastore=vim.Datastore("datastore-7")),
        fullFormattedMessage="web-01 on esx01 in dc1 is powered on",
    )


def test_event_class_name_is_the_vmodl_class() -> None:
    assert event_class_name(powered_on()) == "VmPoweredOnEvent"
    assert event_class_name(vim.event.EventEx()) == "EventEx"


def test_event_fields_are_pascal_case_and_every_field_is_present() -> None:
    data = to_go_json(powered_on(), "vim.version.v7_0_1_0")
    assert data == {
        "Key": 280034,
        "ChainId": 280032,
        "CreatedTime": "2024-01-17T13:02:05.426999Z",
        "UserName": "VSPHERE.LOCAL\\Administrator",
        "Datacenter": {
            "Name": "dc1",
            "Datacenter": {"Type": "Datacenter", "Value": "datacenter-1001"},
        },
        "ComputeResource": None,
        "Host": None,
        "Vm": {"Name": "web-01", "Vm": {"Type": "VirtualMachine", "Value": "vm-42"}},
        "Ds": {"Name": "ds1", "Datastore": {"Type": "Datastore", "Value": "datastore-7"}},
        "Net": None,
        "Dvs": None,
        "FullFormattedMessage": "web-01 on esx01 in dc1 is powered on",
        "ChangeTag": "",
        "Template": False,
    }


def test_fields_newer_than_max_version_are_left_out_and_kept_by_default() -> None:
    assert "AuditId" not in to_go_json(powered_on(), "vim.version.v7_0_1_0")
    assert to_go_json(powered_on())["AuditId"] == ""


def test_unset_optional_bool_and_time_are_null_required_ones_zero() -> None:
    info = vim.TaskInfo(key="task-1", state="running")
    data = to_go_json(info)
    assert data["Cancelled"] is False  # required bool
    assert data["QueueTime"] == "0001-01-01T00:00:00Z"  # required dateTime
    assert data["StartTime"] is None  # optional dateTime
    assert data["Entity"] is None  # optional MoRef
    assert data["State"] == "running"  # enum
    assert data["Description"] is None  # optional data object


def test_empty_arrays_are_null_as_go_decodes_absent_soap_arrays() -> None:
    event = vim.event.EventEx(key=1, eventTypeId="x")
    assert to_go_json(event)["Arguments"] is None


def test_any_type_values_keep_their_runtime_type() -> None:
    event = vim.event.EventEx(
        eventTypeId="com.example.thing",
        arguments=[
            vmodl.KeyAnyValue(key="s", value="text"),
            vmodl.KeyAnyValue(key="n", value=42),
            vmodl.KeyAnyValue(key="vm", value=vim.VirtualMachine("vm-9")),
        ],
        objectType=vim.VirtualMachine,
    )
    data = to_go_json(event)
    assert data["Arguments"] == [
        {"Key": "s", "Value": "text"},
        {"Key": "n", "Value": 42},
        {"Key": "vm", "Value": {"Type": "VirtualMachine", "Value": "vm-9"}},
    ]
    assert data["ObjectType"] == "VirtualMachine"


def test_nested_polymorphic_data_objects_use_the_concrete_type() -> None:
    alarm = vim.alarm.AlarmInfo(
        name="cpu",
        expression=vim.alarm.OrAlarmExpression(
            expression=[
                vim.alarm.StateAlarmExpression(
                    operator="isEqual", type=vim.VirtualMachine, statePath="runtime.powerState"
                )
            ]
        ),
    )
    data = to_go_json(alarm)
    inner = data["Expression"]["Expression"][0]
    assert inner["StatePath"] == "runtime.powerState"
    assert inner["Type"] == "VirtualMachine"
    assert inner["Yellow"] == ""


def test_binary_is_base64() -> None:
    assert to_go_json(b"\x00\xff") == base64.b64encode(b"\x00\xff").decode()


def test_times_are_utc_with_go_fraction() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert go_time(datetime(2024, 1, 1, 2, 0, 0, tzinfo=plus_two)) == "2024-01-01T00:00:00Z"
    assert go_time(datetime(2024, 1, 1, 0, 0, 0, 120000, tzinfo=UTC)) == "2024-01-01T00:00:00.12Z"


def test_years_below_1000_are_padded_as_go_does() -> None:
    # Go's zero time, the text govmomi writes for a time never set, is
    # "0001-01-01T00:00:00Z", where strftime("%Y") gives "1-01-01..." on Linux
    assert go_time(datetime(1, 1, 1, tzinfo=UTC)) == "0001-01-01T00:00:00Z"
    assert go_time(datetime(999, 12, 31, 23, 59, 59, 500, tzinfo=UTC)) == (
        "0999-12-31T23:59:59.0005Z"
    )


def test_unsupported_value_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="no Go JSON encoding for a set"):
        to_go_json({1, 2})
