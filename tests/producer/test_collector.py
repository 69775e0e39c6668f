"""The collector on a real vcsim: replacing its change notifications (its "doorbell")
while the vCenter session is gone raises, for the worker to reconnect, and never leaves
the collector without the doorbell it had; events the vCenter returns again are
written once."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import REGISTRY
from pyVim.connect import Disconnect
from pyVmomi import vim

from devenv.activity import VcsimClient, connect, inventory
from producer import soap_raw
from producer.collector import REARM_AFTER_EVENTS, EventCollector, PropertyCollector
from producer.position import Position, Sequencer, position_of
from schemas import vmodl_doorbell
from schemas.vmodl_json import GoEvent, event_class_name, to_go_json

pytestmark = pytest.mark.integration


def test_doorbell_replaced_while_the_session_is_gone_raises_and_keeps_the_old(vcsim: Any) -> None:
    si = connect(vcsim)
    collector = EventCollector(si.RetrieveContent(), None, poll_interval=1, vcenter="sim")
    working = collector._property_collector
    assert working is not None  # vcsim has change notifications
    Disconnect(si)  # the session ends under the collector, as when vCenter restarts

    with pytest.raises(vim.fault.NotAuthenticated):
        collector._rearm()

    assert collector._property_collector is working
    collector.close()  # tolerates the session being gone


def test_events_the_vcenter_returns_again_are_taken_once(vcsim: Any) -> None:
    # A rewound collector makes vcsim return every event again, deterministically: the
    # same repeat its page-refill race produces now and then (issue 15)
    client = VcsimClient(vcsim)
    client.post_eventex(5)
    collector = EventCollector(client.content, None, poll_interval=1, vcenter="sim")
    try:
        first = collector.read_page(1000)
        sequencer = Sequencer(Position.boundary(position_of(first[0]).time))
        taken, _ = sequencer.accept(first)
        assert len(taken) == len(first) >= 5

        collector._collector.RewindCollector()  # the vCenter repeats itself
        client.post_eventex(3)
        page = collector.read_page(1000)
        again, gaps = sequencer.accept(page)
    finally:
        collector.close()

    repeats = [event for event in page if int(event.key) <= int(taken[-1].key)]
    assert len(repeats) >= 5
    assert [int(event.key) for event in again] == [int(taken[-1].key) + n for n in (1, 2, 3)]
    assert (sequencer.repeated, gaps) == (len(repeats), [])


def _page_as_go_json(page: list[Any]) -> list[tuple[str, int, Any, dict[str, Any]]]:
    return [
        (
            event_class_name(event),
            int(event.key),
            position_of(event).time,
            event.data if isinstance(event, GoEvent) else to_go_json(event),
        )
        for event in page
    ]


def test_pages_read_from_the_xml_equal_pyvmomis_on_vcsim(vcsim: Any) -> None:
    # vcsim's own history (inventory, sessions, power) plus EventEx and a power cycle
    client = VcsimClient(vcsim)
    client.post_eventex(5)
    client.power_cycle(inventory(client.content, vim.VirtualMachine)[0])
    collector = EventCollector(client.content, None, poll_interval=1, vcenter="sim")
    plain = client.content.eventManager.CreateCollectorForEvents(vim.event.EventFilterSpec())
    try:
        assert collector._reader is not None  # vcsim's stub is the one soap_raw mirrors
        fast = collector.read_page(1000)
        slow = list(plain.ReadNextEvents(1000))
    finally:
        collector.close()
        plain.DestroyCollector()
    assert all(isinstance(event, GoEvent) for event in fast)
    assert len({event_class_name(event) for event in fast}) >= 5
    assert _page_as_go_json(fast) == _page_as_go_json(slow)
    assert (collector._reader.fast_pages, collector._reader.slow_pages) == (1, 0)


def test_a_page_with_an_alarm_event_is_read_by_pyvmomi(vcsim: Any) -> None:
    # the worker looks the alarm up through the event's MoRef object: it needs pyVmomi's
    client = VcsimClient(vcsim)
    alarm = client.content.alarmManager.GetAlarm(None)[0]
    client.post_alarm_event("AlarmCreatedEvent", alarm, "bench alarm")
    collector = EventCollector(client.content, None, poll_interval=1, vcenter="sim")
    try:
        page = collector.read_page(1000)
    finally:
        collector.close()
    assert collector._reader is not None
    assert (collector._reader.fast_pages, collector._reader.slow_pages) == (0, 1)
    assert not any(isinstance(event, GoEvent) for event in page)
    assert any(event_class_name(event) == "AlarmCreatedEvent" for event in page)


def test_a_fault_from_the_raw_read_is_pyvmomis(vcsim: Any) -> None:
    si = connect(vcsim)
    collector = EventCollector(si.RetrieveContent(), None, poll_interval=1, vcenter="sim")
    Disconnect(si)  # the session ends under the collector
    try:
        with pytest.raises(vim.fault.NotAuthenticated):
            collector.read_page(10)
    finally:
        collector.close()


def test_a_pyvmomi_the_raw_read_was_not_checked_against_reads_as_before(
    vcsim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # soap_raw mirrors SoapStubAdapter internals of the pyVmomi releases it names
    monkeypatch.setattr(soap_raw, "CHECKED_PYVMOMI", ("0.0.",))
    client = VcsimClient(vcsim)
    client.post_eventex(3)
    collector = EventCollector(client.content, None, poll_interval=1, vcenter="sim")
    try:
        assert collector._reader is None
        page = collector.read_page(1000)
    finally:
        collector.close()
    assert len(page) >= 3 and not any(isinstance(event, GoEvent) for event in page)


def _rings_both_ways(collector: EventCollector, version: str, wait_s: int) -> tuple[Any, Any]:
    """One WaitForUpdatesEx response read by `read_doorbell` and by pyVmomi."""
    doorbell = collector._raw_doorbell
    assert doorbell is not None  # vcsim's stub is the one soap_raw mirrors
    stub, info = doorbell._stub, doorbell._info
    options = PropertyCollector.WaitOptions(maxWaitSeconds=wait_s)
    request = soap_raw.request_bytes(
        stub, stub.SerializeRequest(collector._property_collector, info, [version, options])
    )
    status, body = soap_raw.post(stub, request)
    assert status == 200
    return vmodl_doorbell.read_doorbell(body), soap_raw.doorbell_update(
        soap_raw.deserialize(stub, info, status, body)
    )


def test_doorbell_rings_read_from_the_xml_equal_pyvmomis_on_vcsim(vcsim: Any) -> None:
    client = VcsimClient(vcsim)
    collector = EventCollector(client.content, None, poll_interval=1, vcenter="sim")
    try:
        first, first_pyvmomi = _rings_both_ways(collector, "", 1)  # the current page
        assert first == first_pyvmomi and first is not None and len(first.latest_page) == 1
        client.post_eventex(4)  # vcsim queues a change per event
        queued, queued_pyvmomi = _rings_both_ways(collector, first.version, 1)
        assert queued == queued_pyvmomi and queued is not None
        newest = max(event.key for event in collector.read_page(1000))
        assert [event.key for event in queued.latest_page] == [newest]
        quiet, quiet_pyvmomi = _rings_both_ways(collector, queued.version, 1)
        assert quiet is None and quiet_pyvmomi is None  # the wait ran out
    finally:
        collector.close()


def test_wait_for_change_reads_its_rings_from_the_xml_on_vcsim(vcsim: Any) -> None:
    client = VcsimClient(vcsim)
    collector = EventCollector(client.content, None, poll_interval=1, vcenter="sim")
    try:
        collector.read_page(1000)
        assert collector.wait_for_change()  # the page as it is
        client.post_eventex(2)
        latest = collector.wait_for_change()
        keys = [int(event.key) for event in collector.read_page(1000)]
        assert latest is not None and [position_of(e).key for e in latest] == [keys[-1]]
        assert collector.wait_for_change() is None
        collector._read_since_wait = 10_000  # a replaced doorbell rings raw as well
        assert collector.wait_for_change()
    finally:
        collector.close()
    doorbell = collector._raw_doorbell
    assert doorbell is not None and (doorbell.fast_rings, doorbell.slow_rings) == (1, 0)


def test_a_fault_from_the_raw_doorbell_is_pyvmomis(vcsim: Any) -> None:
    si = connect(vcsim)
    collector = EventCollector(si.RetrieveContent(), None, poll_interval=1, vcenter="sim")
    Disconnect(si)
    try:
        with pytest.raises(vim.fault.NotAuthenticated):
            collector.wait_for_change()
    finally:
        collector.close()
    assert collector._raw_doorbell is not None and collector._raw_doorbell.slow_rings == 1


def _sample(name: str, vcenter: str) -> float:
    value = REGISTRY.get_sample_value(name, {"vcenter": vcenter})
    assert value is not None, f"{name} has no sample for {vcenter}"
    return value


def test_the_doorbell_metrics_show_the_waits_for_a_change_and_the_rearms(
    vcsim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # what an operator (and test_produce) sees: waiting_for_change is 1 exactly while a
    # wait may block, not while a new doorbell gives its current page, which it does at once
    client = VcsimClient(vcsim)
    collector = EventCollector(client.content, None, poll_interval=1, vcenter="rings")
    waiting = "vcstream_producer_waiting_for_change"
    rearms = "vcstream_producer_doorbell_rearms_total"
    seen: list[tuple[bool, float]] = []  # (with a version, waiting_for_change) per ring
    ring = collector._ring

    def watched_ring() -> Any:
        seen.append((bool(collector._version), _sample(waiting, "rings")))
        return ring()

    monkeypatch.setattr(collector, "_ring", watched_ring)
    try:
        collector.read_page(1000)  # vcsim's history, however long
        assert collector.wait_for_change()  # the first answer: the page as it is
        before = _sample(rearms, "rings")
        client.post_eventex(REARM_AFTER_EVENTS - 1)
        collector.read_page(1000)
        assert collector.wait_for_change()  # rings queued meanwhile: on the same doorbell
        assert _sample(rearms, "rings") == before
        client.post_eventex(REARM_AFTER_EVENTS)
        collector.read_page(1000)
        assert collector.wait_for_change()  # a new doorbell's first answer
        assert _sample(rearms, "rings") == before + 1
        assert collector.wait_for_change() is None  # quiet: the wait ran out
    finally:
        collector.close()
    assert seen == [(False, 0), (True, 1), (False, 0), (True, 1)]
    assert _sample(waiting, "rings") == 0
