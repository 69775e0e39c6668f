"""The event payloads shown in VEBA's documentation and examples, kept in golden/.

Each must (1) pass through the codec unchanged, record and data alike, and (2) be
exactly what our converter writes for the pyVmomi object it describes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pyVmomi import vim

from schemas import decode, encode
from schemas.codec import encode_vsphere
from schemas.vmodl_json import VEBA_VMODL_VERSION, event_class_name, to_go_json
from schemas.vmodl_parse import event_from_go_json, from_go_json
from schemas.vsphere import VCenterIdentity

GOLDEN = sorted((Path(__file__).parent / "golden").glob("*.json"))
VCENTER = VCenterIdentity(
    instance_uuid="5b5e7bf8-3a9b-4b8e-9f3c-0c2a4c6f1f10",
    source="https://vcenter.local/sdk",
    api_version="8.0.2.0",
)


def golden(path: Path) -> tuple[str, dict[str, Any]]:
    document = json.loads(path.read_text())
    return document["class"], document["data"]


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.stem)
def test_golden_payload_decodes_and_reencodes_unchanged(path: Path) -> None:
    class_name, data = golden(path)
    record = encode_vsphere(data, class_name, VCENTER)
    event = decode(record)
    assert event.get_data() == data
    assert event.get_type() == f"com.vmware.vsphere.{class_name}.v0"
    assert event.get_subject() == class_name
    assert event.get_extension("eventclass") == "event"
    assert event.get_extension("vsphereapiversion") == "8.0.2.0"
    again = encode(event, record.key)
    assert (again.value, again.key, again.headers) == (record.value, record.key, record.headers)


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.stem)
def test_golden_payload_is_what_the_converter_writes(path: Path) -> None:
    class_name, data = golden(path)
    native = {k: v for k, v in data.items() if k != "AlarmInfo"}  # enrichment adds it
    event = event_from_go_json(class_name, native)
    assert event_class_name(event) == class_name
    assert to_go_json(event, VEBA_VMODL_VERSION) == native


def test_golden_alarm_info_is_what_the_converter_writes() -> None:
    _, data = golden(Path(__file__).parent / "golden" / "AlarmStatusChangedEvent.json")
    info = from_go_json(data["AlarmInfo"], vim.alarm.AlarmInfo)
    # the key set alone tells a base-typed field's subclass, up to types with the same
    # fields: Go's JSON cannot tell AndAlarmExpression from OrAlarmExpression
    assert isinstance(info.expression, vim.alarm.AndAlarmExpression | vim.alarm.OrAlarmExpression)
    assert isinstance(info.expression.expression[0], vim.alarm.MetricAlarmExpression)
    assert to_go_json(info, VEBA_VMODL_VERSION) == data["AlarmInfo"]


def test_golden_record_key_follows_the_entity() -> None:
    _, data = golden(Path(__file__).parent / "golden" / "VmPoweredOnEvent.json")
    record = encode_vsphere(data, "VmPoweredOnEvent", VCENTER)
    assert record.key == f"{VCENTER.instance_uuid}/VirtualMachine:vm-2073".encode()
