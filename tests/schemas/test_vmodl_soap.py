"""The ReadNextEvents fast path (`schemas.vmodl_soap`) against pyVmomi: for generated
events of every event class, serialised by pyVmomi's own SOAP serializer into a
ReadNextEvents response, the fast path's Go JSON is `to_go_json` of pyVmomi's
deserialisation of the same bytes, or it declines the page (and pyVmomi reads it)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from pyVmomi import Iso8601, VmomiSupport, vim, vmodl

from bench.decode import NEWEST, pyvmomi_page, read_next_events_response
from schemas.vmodl_json import GoEvent, event_class_name, to_go_json
from schemas.vmodl_soap import Declined, _time, read_events
from tests.schemas.vmodl_strategies import XML_TEXT, data_objects, event_classes, events

# VEBA's govmomi's version: pyVmomi narrows newer types to what an old stub knows
OLD = "vim.version.v7_0_1_0"
PER_CLASS = settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
MIXED = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))


def response(events: list[Any], version: str = NEWEST) -> bytes:
    try:
        return read_next_events_response(events, version)
    except TypeError:  # e.g. a fault without its required fields: no vCenter sends that
        reject()


def pyvmomi_go_page(xml: bytes, version: str) -> list[tuple[str, int, datetime, Any]]:
    page = pyvmomi_page(xml, version)
    return [(event_class_name(e), e.key, e.createdTime, to_go_json(e)) for e in page]


def fast_page(events: list[GoEvent]) -> list[tuple[str, int, datetime, Any]]:
    return [(e.class_name, e.key, e.createdTime, e.data) for e in events]


def assert_same_or_declined(xml: bytes, version: str) -> str:
    """`read` when the fast path read the page (and equally), `declined` when it left it
    to pyVmomi, `unreadable` when pyVmomi cannot read it either (e.g. text with control
    characters, which XML 1.0 cannot hold)."""
    fast = read_events(xml, version)
    try:
        slow = pyvmomi_go_page(xml, version)
    except Exception:
        assert fast is None  # what pyVmomi cannot read, the fast path must not either
        return "unreadable"
    if fast is None:
        return "declined"
    assert fast_page(fast) == slow
    return "read"


def holds_a_fault(value: Any) -> bool:
    """Whether a LocalizedMethodFault is anywhere in `value`: pyVmomi unwraps those, and
    the fast path declines them."""
    if isinstance(value, vmodl.LocalizedMethodFault | vmodl.MethodFault):
        return True
    if isinstance(value, list):
        return any(holds_a_fault(x) for x in value)
    if isinstance(value, VmomiSupport.DataObject):
        return any(holds_a_fault(getattr(value, p.name)) for p in value._GetPropertyList())
    return False


@pytest.mark.parametrize("cls", event_classes(), ids=lambda c: c.__name__)
def test_every_event_class_reads_as_pyvmomi_reads_it(cls: Any) -> None:
    @PER_CLASS
    @given(data_objects(cls, 0, XML_TEXT))
    def check(event: Any) -> None:
        outcome = assert_same_or_declined(response([event]), NEWEST)
        # it declines only what it says it declines
        assert outcome != "declined" or holds_a_fault(event)

    check()


@MIXED
@given(st.lists(events(XML_TEXT), min_size=1, max_size=4), st.sampled_from([NEWEST, OLD]))
def test_pages_of_mixed_events_read_as_pyvmomi_reads_them(page: list[Any], stub: str) -> None:
    assert_same_or_declined(response(page), stub)


CREATED = datetime(2026, 1, 2, 3, 4, 5, 120000, tzinfo=UTC)


def an_event(kind: Any, key: int, **properties: Any) -> Any:
    """A `kind` event with what every event holds (key, chainId, createdTime, userName)."""
    return kind(key=key, chainId=key, createdTime=CREATED, userName="root", **properties)


def on_vm1() -> Any:
    return vim.event.VmEventArgument(name="vm1", vm=vim.VirtualMachine("vm-1"))


def plain_event(key: int = 7) -> Any:
    return an_event(vim.event.VmPoweredOnEvent, key, vm=on_vm1())


def edited(xml: bytes, original: bytes, changed: bytes) -> bytes:
    """`xml` with its first `original` made `changed`. A page without `original` fails
    the test: the edit would change nothing, and the unedited page be tested instead."""
    assert original in xml, f"{original!r} is not in the page"
    return xml.replace(original, changed, 1)


def test_a_plain_page_is_read_fast() -> None:
    xml = response([plain_event(7), an_event(vim.event.EventEx, 8, eventTypeId="a.b")])
    assert assert_same_or_declined(xml, NEWEST) == "read"


def test_one_event_with_a_fault_sends_the_whole_page_to_pyvmomi() -> None:
    failed = an_event(
        vim.event.VmFailedToPowerOnEvent,
        8,
        vm=on_vm1(),
        reason=vmodl.LocalizedMethodFault(fault=vim.fault.InvalidState(), localizedMessage="no"),
    )
    assert read_events(response([plain_event(), failed]), NEWEST) is None


@pytest.mark.parametrize(
    ("original", "changed", "what"),
    [
        (b"<template>false</template>", b"<template>maybe</template>", "a bad boolean"),
        (b"<userName>root</userName>", b"<userNom>root</userNom>", "an unknown property"),
        (b'xsi:type="VmPoweredOnEvent"', b'xsi:type="VmNoSuchEvent"', "an unknown type"),
        (b'type="VirtualMachine"', b'kind="VirtualMachine"', "a MoRef without type"),
        (b"<chainId>7</chainId>", b"<chainId>seven</chainId>", "a non-integer"),
        (b"<key>7</key>", b"", "an event without key"),
    ],
)
def test_what_the_fast_path_does_not_follow_it_declines(
    original: bytes, changed: bytes, what: str
) -> None:
    assert read_events(edited(response([plain_event()]), original, changed), NEWEST) is None, what


def test_a_soap_fault_is_declined() -> None:
    fault = (
        b'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope'
        b' xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
        b"<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>gone"
        b"</faultstring></soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    )
    assert read_events(fault, NEWEST) is None


@settings(max_examples=300, deadline=None)
@given(
    st.from_regex(r"\d{4}-[01]\d-[0-3]\dT[0-2]\d:[0-6]\d:[0-6]\d(\.\d{1,12})?Z", fullmatch=True)
    | st.sampled_from(["2026-01-01T24:00:00Z", "2026-01-01T24:00:01Z", "2026-01-01T10:00:00+02:00"])
)
def test_times_read_as_pyvmomi_reads_them(text: str) -> None:
    expected = Iso8601.ParseISO8601(text)
    try:
        got = _time(text, None)  # type: ignore[arg-type]
    except Declined:
        assert expected is None
    else:
        assert got == expected and got.utcoffset() == expected.utcoffset()


def test_an_event_read_as_go_json_is_its_own_go_json() -> None:
    [event] = read_events(response([plain_event()]), NEWEST) or []
    assert to_go_json(event) is event.data
    with pytest.raises(ValueError, match="max_version"):
        to_go_json(event, max_version="vim.version.v7_0_1_0")


def test_a_value_narrowed_to_a_type_its_property_refuses_is_declined() -> None:
    # VirtualDeviceGroups is newer than OLD: pyVmomi narrows it to DynamicData, which the
    # property then refuses (pyVmomi raises); the fast path must not write it
    event = an_event(
        vim.event.VmReconfiguredEvent,
        3,
        configSpec=vim.vm.ConfigSpec(deviceGroups=vim.vm.VirtualDeviceGroups()),
    )
    xml = response([event])
    with pytest.raises(TypeError, match="deviceGroups"):
        pyvmomi_page(xml, OLD)
    assert read_events(xml, OLD) is None
    assert assert_same_or_declined(xml, NEWEST) == "read"


RETURNVAL = b'<returnval xsi:type="VmPoweredOnEvent">'
USER = b"<userName>root</userName>"
MOREF = b'<vm type="VirtualMachine">'
# corners of the XML: namespaces declared on inner elements (values such as xsi:type and
# a MoRef's type resolve against those in scope), text the parser splits, empty
# elements, what a value element must not hold
CORNERS = [
    (
        "default namespace again",
        RETURNVAL,
        b'<returnval xmlns="urn:vim25" xsi:type="VmPoweredOnEvent">',
        "read",
    ),
    (
        "xsi under another prefix",
        RETURNVAL,
        b'<returnval xmlns:X="http://www.w3.org/2001/XMLSchema-instance"'
        b' X:type="VmPoweredOnEvent">',
        "read",
    ),
    (
        "a prefixed xsi:type",
        RETURNVAL,
        b'<returnval xmlns:v="urn:vim25" xsi:type="v:VmPoweredOnEvent">',
        "read",
    ),
    (
        "a prefix of another namespace",
        RETURNVAL,
        b'<returnval xmlns:v="urn:other" xsi:type="v:VmPoweredOnEvent">',
        "declined",
    ),
    ("an unbound prefix", RETURNVAL, b'<returnval xsi:type="v:VmPoweredOnEvent">', "declined"),
    (
        "the default namespace undeclared",
        RETURNVAL,
        b'<returnval xmlns="" xsi:type="VmPoweredOnEvent">',
        "declined",
    ),
    ("a prefixed MoRef type", MOREF, b'<vm xmlns:v="urn:vim25" type="v:VirtualMachine">', "read"),
    ("an unbound MoRef prefix", MOREF, b'<vm type="v:VirtualMachine">', "declined"),
    (
        "a MoRef without its default namespace",
        MOREF,
        b'<vm xmlns="" type="VirtualMachine">',
        "declined",
    ),
    ("a MoRef holding an element", b"vm-1</vm>", b"vm-1<b/></vm>", "unreadable"),
    (
        "a property in another namespace",
        b"<key>7</key>",
        b"<q:key xmlns:q='urn:q'>7</q:key>",
        "read",
    ),
    (
        "text split",
        USER,
        b"<userName>r<![CDATA[o]]>&#111;<!-- c -->&amp;<?pi x?>t</userName>",
        "read",
    ),
    ("an empty element", USER, b"<userName/>", "read"),
    ("an empty pair", USER, b"<userName></userName>", "read"),
    ("a value holding an element", USER, b"<userName>ro<b/>ot</userName>", "unreadable"),
    ("xsi:type on a value", USER, b'<userName xsi:type="xsd:string">root</userName>', "read"),
    ("an empty xsi:type on a value", USER, b'<userName xsi:type="">root</userName>', "declined"),
    ("text around properties", b"<key>7</key>", b"\n <key>7</key>junk\n", "read"),
    (
        "a fault beside the response",
        b"<soapenv:Body>",
        b"<soapenv:Body><x><soapenv:Fault/></x>",
        "declined",
    ),
    (
        "an element after the response",
        b"</ReadNextEventsResponse>",
        b"</ReadNextEventsResponse><returnval/>",
        "read",
    ),
]


@pytest.mark.parametrize(
    ("original", "changed", "outcome"),
    [corner[1:] for corner in CORNERS],
    ids=[corner[0] for corner in CORNERS],
)
def test_corners_of_the_tree_read_as_pyvmomi_reads_them(
    original: bytes, changed: bytes, outcome: str
) -> None:
    xml = edited(response([plain_event(7), plain_event(8)]), original, changed)
    assert assert_same_or_declined(xml, NEWEST) == outcome


def test_namespaces_declared_on_an_event_end_with_it() -> None:
    first = b'<returnval xmlns:v="urn:vim25" xsi:type="VmPoweredOnEvent">'
    second = b'<returnval xsi:type="v:VmPoweredOnEvent">'
    xml = edited(response([plain_event(7), plain_event(8)]), RETURNVAL, first)
    assert assert_same_or_declined(xml, NEWEST) == "read"
    # the second event uses the prefix the first declared: out of scope there
    assert assert_same_or_declined(edited(xml, RETURNVAL, second), NEWEST) == "declined"


def test_an_empty_type_reads_as_unset() -> None:
    # EventEx.objectType is a type: empty text is None to pyVmomi, "" to Go
    event = an_event(vim.event.EventEx, 8, eventTypeId="a.b", objectType=vim.VirtualMachine)
    typed = b"<objectType>VirtualMachine</objectType>"
    empty = edited(response([event]), typed, b"<objectType></objectType>")
    assert assert_same_or_declined(empty, NEWEST) == "read"
    [read] = read_events(empty, NEWEST) or []
    assert read.data["ObjectType"] == ""


def test_an_undefined_entity_behind_an_external_dtd_is_skipped_as_pyvmomi_skips_it() -> None:
    xml = edited(
        response([plain_event()]), b"?>", b'?><!DOCTYPE soapenv:Envelope SYSTEM "http://x/y.dtd">'
    )
    xml = edited(xml, USER, b"<userName>ro&foo;ot</userName>")
    assert assert_same_or_declined(xml, NEWEST) == "read"
