"""The CloudEvent attributes and record keys of vCenter events (VEBA v0.8 rules)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from cloudevents.core.bindings import kafka as kafka_binding
from cloudevents.core.v1.event import CloudEvent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyVmomi import vim

from schemas import decode
from schemas.codec import (
    _FORMAT,
    encode,
    encode_event,
    encode_vsphere,
    vsphere_cloudevent,
    with_changes,
)
from schemas.vmodl_json import event_class_name, to_go_json
from schemas.vsphere import VCenterIdentity, event_id, record_key
from tests.schemas.vmodl_strategies import events

VCENTER = VCenterIdentity("vc-uuid", "https://vc01.example.com/sdk", "8.0.3.0")
CREATED = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def event_ex(**fields: Any) -> Any:
    return vim.event.EventEx(
        key=11, chainId=11, createdTime=CREATED, eventTypeId="com.vmware.vc.backup", **fields
    )


def test_pyvmomi_event_becomes_a_veba_cloudevent() -> None:
    vm = vim.event.VmEventArgument(name="web", vm=vim.VirtualMachine("vm-42"))
    record = encode_event(
        vim.event.VmPoweredOnEvent(key=5, chainId=5, createdTime=CREATED, vm=vm), VCENTER
    )
    event = decode(record)
    assert event.get_type() == "com.vmware.vsphere.VmPoweredOnEvent.v0"
    assert event.get_source() == VCENTER.source
    assert event.get_subject() == "VmPoweredOnEvent"
    assert event.get_time() == CREATED
    assert event.get_extension("eventclass") == "event"
    assert event.get_extension("vsphereapiversion") == "8.0.3.0"
    assert event.get_id() == event_id("vc-uuid", 5, CREATED)
    assert record.key == b"vc-uuid/VirtualMachine:vm-42"


def test_eventex_type_is_its_event_type_id() -> None:
    event = decode(encode_event(event_ex(), VCENTER))
    assert event.get_type() == "com.vmware.vsphere.com.vmware.vc.backup.v0"
    assert event.get_extension("eventclass") == "eventex"
    assert event.get_subject() == "EventEx"


def test_extended_event_type_is_its_event_type_id() -> None:
    extended = vim.event.ExtendedEvent(
        key=3, chainId=3, createdTime=CREATED, eventTypeId="com.vmware.applmgmt.backup.failed"
    )
    event = decode(encode_event(extended, VCENTER))
    assert event.get_type() == "com.vmware.vsphere.com.vmware.applmgmt.backup.failed.v0"
    assert event.get_extension("eventclass") == "extendedevent"


def test_id_is_deterministic_and_distinguishes_wrapped_keys() -> None:
    first = encode_event(event_ex(), VCENTER)
    assert first == encode_event(event_ex(), VCENTER)
    later = event_ex()
    later.createdTime = datetime(2025, 1, 1, tzinfo=UTC)  # the same key after a wrap
    assert decode(first).get_id() != decode(encode_event(later, VCENTER)).get_id()


DS = vim.event.DatastoreEventArgument(name="d", datastore=vim.Datastore("ds-1"))
NET = vim.event.NetworkEventArgument(name="n", network=vim.Network("net-2"))
HOST = vim.event.HostEventArgument(name="h", host=vim.HostSystem("host-3"))


@pytest.mark.parametrize(
    ("field", "argument", "expected"),
    [
        ("ds", DS, "Datastore:ds-1"),
        ("net", NET, "Network:net-2"),
        ("host", HOST, "HostSystem:host-3"),
    ],
)
def test_record_key_follows_the_entity_argument(field: str, argument: Any, expected: str) -> None:
    event = vim.event.GeneralUserEvent(key=1, createdTime=CREATED, **{field: argument})
    assert encode_event(event, VCENTER).key == f"vc-uuid/{expected}".encode()


def test_record_key_of_alarm_event_is_the_alarmed_entity() -> None:
    event = vim.event.AlarmStatusChangedEvent(
        key=1,
        createdTime=CREATED,
        entity=vim.event.ManagedEntityEventArgument(
            name="c", entity=vim.ClusterComputeResource("domain-c7")
        ),
        datacenter=vim.event.DatacenterEventArgument(name="dc", datacenter=vim.Datacenter("dc-1")),
    )
    assert encode_event(event, VCENTER).key == b"vc-uuid/ClusterComputeResource:domain-c7"


def test_record_key_of_eventex_is_its_object() -> None:
    event = event_ex(objectId="vm-9", objectType=vim.VirtualMachine)
    assert encode_event(event, VCENTER).key == b"vc-uuid/VirtualMachine:vm-9"
    untyped = event_ex(objectId="urn:backup:1")
    assert encode_event(untyped, VCENTER).key == b"vc-uuid/object:urn:backup:1"


def test_record_key_without_entity_is_the_vcenter() -> None:
    event = vim.event.UserLoginSessionEvent(key=1, createdTime=CREATED, userName="u")
    assert encode_event(event, VCENTER).key == b"vc-uuid"


def test_event_without_created_time_is_rejected() -> None:
    with pytest.raises(ValueError, match="VmPoweredOnEvent has no CreatedTime"):
        vsphere_cloudevent({"Key": 1}, "VmPoweredOnEvent", VCENTER)


def test_event_with_bad_created_time_is_rejected() -> None:
    with pytest.raises(ValueError, match="invalid CreatedTime 'soon'"):
        vsphere_cloudevent({"Key": 1, "CreatedTime": "soon"}, "VmPoweredOnEvent", VCENTER)


def test_event_without_key_is_rejected() -> None:
    data = {"CreatedTime": "2024-01-01T00:00:00Z"}
    with pytest.raises(ValueError, match="VmPoweredOnEvent has no integer Key"):
        encode_vsphere(data, "VmPoweredOnEvent", VCENTER)


def test_data_that_is_not_json_is_rejected() -> None:
    event = vsphere_cloudevent(to_go_json(event_ex()), "EventEx", VCENTER)
    broken = with_changes(event, data={"Key": 1, "Blob": object()})
    with pytest.raises(ValueError, match="data that is not JSON"):
        encode(broken)


def test_list_data_round_trips_as_json() -> None:
    event = vsphere_cloudevent(to_go_json(event_ex()), "EventEx", VCENTER)
    as_list = with_changes(event, data=[1, "two", None])  # type: ignore[arg-type]
    record = encode(as_list)
    assert record.value == b'[1,"two",null]'
    decoded: Any = decode(record).get_data()
    assert decoded == [1, "two", None]


def test_with_changes_keeps_everything_else() -> None:
    event = decode(encode_event(event_ex(), VCENTER))
    changed = with_changes(event, type="com.vmware.vsphere.X.v0.AlarmInfo")
    assert changed.get_type().endswith(".AlarmInfo")
    assert changed.get_id() == event.get_id()
    assert changed.get_data() == event.get_data()
    assert "partitionkey" not in changed.get_attributes()


def through_the_sdk(data: dict[str, Any], class_name: str, vcenter: VCenterIdentity) -> Any:
    return encode(
        vsphere_cloudevent(data, class_name, vcenter), record_key(vcenter.instance_uuid, data)
    )


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(events(), st.sampled_from([UTC, timezone(timedelta(hours=-5, seconds=-968)), None]))
def test_records_without_the_sdk_equal_the_sdks(event: Any, zone: Any) -> None:
    # encode_vsphere builds the headers itself once a vCenter's first record is made
    encode_vsphere(to_go_json(event_ex()), "EventEx", VCENTER)
    data = to_go_json(event)
    if zone is not None:  # CreatedTime as a datetime, in a zone with seconds, or naive
        data["CreatedTime"] = event.createdTime.astimezone(zone)
    elif event.createdTime is not None:
        data["CreatedTime"] = event.createdTime.replace(tzinfo=None)
    class_name = event_class_name(event)
    try:
        expected = through_the_sdk(data, class_name, VCENTER)
    except ValueError as exc:
        with pytest.raises(ValueError) as raised:
            encode_vsphere(data, class_name, VCENTER)
        assert str(raised.value) == str(exc)
        return
    record = encode_vsphere(data, class_name, VCENTER)
    assert (record.value, record.key, record.headers) == (
        expected.value,
        expected.key,
        expected.headers,
    )


def test_data_that_is_not_json_is_refused_as_by_the_sdk() -> None:
    encode_vsphere(to_go_json(event_ex()), "EventEx", VCENTER)
    data = {**to_go_json(event_ex()), "Odd": {1, 2}}
    with pytest.raises(ValueError, match="has data that is not JSON") as raised:
        encode_vsphere(data, "EventEx", VCENTER)
    with pytest.raises(ValueError) as sdk:
        through_the_sdk(data, "EventEx", VCENTER)
    assert str(raised.value) == str(sdk.value)


def test_an_empty_class_name_is_refused_as_by_the_sdk() -> None:
    encode_vsphere(to_go_json(event_ex()), "EventEx", VCENTER)
    with pytest.raises(Exception, match="subject") as raised:
        encode_vsphere(to_go_json(event_ex()), "", VCENTER)
    with pytest.raises(Exception, match="subject") as sdk:
        through_the_sdk(to_go_json(event_ex()), "", VCENTER)
    assert type(raised.value) is type(sdk.value)


def through_to_binary(event: CloudEvent, key: bytes | str | None) -> tuple[Any, ...]:
    """What the SDK's Kafka binding writes for an event already in UTC."""
    message = kafka_binding.to_binary(event, _FORMAT, key_mapper=lambda _: key)
    message_key = message.key.encode() if isinstance(message.key, str) else message.key
    return message.value, message_key, list(message.headers.items())


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9]{0,7}", fullmatch=True).filter(lambda n: n != "data"),
        st.one_of(st.text(min_size=1), st.integers(), st.booleans(), st.none()),
        max_size=4,
    ),
    st.sampled_from(["application/json", None]),
    st.sampled_from([b"vc/VirtualMachine:vm-1", "text-key", None]),
)
def test_encode_writes_what_the_sdks_kafka_binding_writes(extras, content_type, key) -> None:
    attributes: dict[str, Any] = {"id": "1", "source": "/s", "type": "t", "time": CREATED}
    if content_type:
        attributes["datacontenttype"] = content_type
    attributes |= {"subject": "VmPoweredOnEvent"}
    extensions = {name: value for name, value in extras.items() if name not in attributes}
    event = CloudEvent(attributes={**attributes, **extensions}, data={"Key": 1, "To": ["red"]})
    record = encode(event, key)
    assert (record.value, record.key, record.headers) == through_to_binary(event, key)


def test_encode_writes_a_time_in_another_zone_as_the_sdk_writes_it_in_utc() -> None:
    zone = timezone(timedelta(hours=-5, seconds=-968))
    event = CloudEvent({"id": "1", "source": "/s", "type": "t", "time": CREATED.astimezone(zone)})
    record = encode(event, None)
    assert dict(record.headers)["ce_time"] == b"2024-05-01T12:00:00.123456Z"
    utc = with_changes(event, time=CREATED)
    assert (record.value, record.key, record.headers) == through_to_binary(utc, None)
