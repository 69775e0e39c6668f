"""enrich_alarms without Kafka: which events, the AlarmInfo shape, ids, the missing marker,
and the definition index over the table."""

from __future__ import annotations

from schemas import avro
from schemas.vsphere import derived_id
from streams.api import data_of
from streams.definitions import DefinitionIndex
from streams.enrich import AlarmRef, alarm_ref, enriched, unenriched
from streams.testing import TEST_VCENTER, vsphere_event
from tests.streams.helpers import definition_record

GLOBS = ("com.vmware.vsphere.Alarm*Event.v0",)
ALARM_INFO = {
    "Name": "Host CPU usage",
    "SystemName": "alarm.HostCPUUsageAlarm",
    "Description": "Default alarm",
    "Enabled": True,
    "Key": "alarm-384",
    "Alarm": {"Type": "Alarm", "Value": "alarm-384"},
    "Entity": {"Type": "Folder", "Value": "group-d1"},
    "Expression": {"Expression": []},
}


def alarm_event(kind="AlarmStatusChangedEvent", alarm="alarm-384", **data):
    body = {"Alarm": {"Name": "Host CPU usage", "Alarm": {"Type": "Alarm", "Value": alarm}}}
    return vsphere_event(kind, {**body, "From": "green", "To": "red", **data})


def definition(alarm="alarm-384", source=TEST_VCENTER.source, uuid=TEST_VCENTER.instance_uuid):
    record = definition_record(uuid, source, alarm, "Host CPU usage", ALARM_INFO)
    return record.key, record.value


def test_every_alarm_event_kind_is_enriched_others_are_not():
    for kind in ("AlarmStatusChangedEvent", "AlarmAcknowledgedEvent", "AlarmClearedEvent"):
        assert alarm_ref(alarm_event(kind), GLOBS) == AlarmRef(TEST_VCENTER.source, "alarm-384")
    assert alarm_ref(vsphere_event("VmPoweredOnEvent"), GLOBS) is None
    # an alarm event without an alarm reference has nothing to join on
    assert alarm_ref(vsphere_event("AlarmStatusChangedEvent", {"Alarm": None}), GLOBS) is None


def test_enriched_event_carries_alarm_info_and_suffixed_type():
    event = alarm_event()
    _, value = definition()
    out = enriched(event, avro.decode("alarm_definition", value), ".AlarmInfo")
    assert out.get_type() == "com.vmware.vsphere.AlarmStatusChangedEvent.v0.AlarmInfo"
    assert data_of(out)["AlarmInfo"] == ALARM_INFO
    assert data_of(out)["To"] == "red"
    assert out.get_id() == derived_id(event.get_id(), "enrich_alarms")
    assert out.get_source() == event.get_source()
    assert out.get_time() == event.get_time()
    assert "AlarmInfo" not in data_of(event)  # the input is not modified


def test_unenriched_event_is_marked_and_keeps_type_and_data():
    event = alarm_event()
    out = unenriched(event)
    assert out.get_extension("enrichment") == "missing"
    assert out.get_type() == event.get_type()
    assert data_of(out) == data_of(event)
    assert out.get_id() == derived_id(event.get_id(), "enrich_alarms")


def test_index_finds_definitions_by_source_and_alarm_as_they_arrive():
    table: dict[bytes, bytes] = {}
    index = DefinitionIndex(table)
    ref = AlarmRef(TEST_VCENTER.source, "alarm-384")
    assert index.lookup(ref) is None
    key, value = definition()
    table[key] = value
    assert (index.lookup(ref) or {}).get("name") == "Host CPU usage"
    # another vCenter's alarm with the same moref is not confused with it
    assert index.lookup(AlarmRef("https://other/sdk", "alarm-384")) is None
    other_key, other_value = definition(source="https://other/sdk", uuid="other-uuid")
    table[other_key] = other_value
    found = index.lookup(AlarmRef("https://other/sdk", "alarm-384")) or {}
    assert found.get("vcenterUuid") == "other-uuid"
    del table[key]  # a tombstone removes it
    assert index.lookup(ref) is None


def test_unreadable_definition_is_skipped_not_fatal():
    key, value = definition()
    table = {b"x/alarm-1": b"not avro", key: value}
    assert DefinitionIndex(table).lookup(AlarmRef(TEST_VCENTER.source, "alarm-384")) is not None


def test_index_sees_a_definition_changed_under_the_same_key():
    # lookups reuse the decoded definition while the table holds the same payload
    table: dict[bytes, bytes] = {}
    index = DefinitionIndex(table)
    ref = AlarmRef(TEST_VCENTER.source, "alarm-384")
    key, value = definition()
    table[key] = value
    assert (index.lookup(ref) or {}).get("name") == "Host CPU usage"
    renamed = definition_record(
        TEST_VCENTER.instance_uuid, TEST_VCENTER.source, "alarm-384", "Renamed", ALARM_INFO
    )
    table[key] = renamed.value or b""
    assert (index.lookup(ref) or {}).get("name") == "Renamed"
