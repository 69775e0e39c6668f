"""The three built-in stateful processors, with `streams.testing` (no Kafka).

Events carry fixed times (a record's Kafka timestamp is its event's time in the Runner),
so a window boundary falls where a test puts it, not where the clock happens to be.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from schemas.vsphere import ALARM_STORM_TYPE, derived_id
from streams.api import data_of, suppressed
from streams.processors.dedup import duplicates
from streams.processors.maintenance import maintenance
from streams.processors.storm import alarm_storm
from streams.testing import Runner, vsphere_event
from vcstream.settings.streams import AlarmStormSettings, DuplicatesSettings, MaintenanceSettings

T0 = datetime(2025, 3, 1, 10, 0, 30, tzinfo=UTC)  # 30 s into a window of any size up to 10 m
VM1 = {"Name": "web01", "Vm": {"Type": "VirtualMachine", "Value": "vm-1"}}
VM2 = {"Name": "db01", "Vm": {"Type": "VirtualMachine", "Value": "vm-2"}}
VM4 = {"Name": "app01", "Vm": {"Type": "VirtualMachine", "Value": "vm-4"}}  # partition 0 of 2
HOST = {"Name": "esx01", "Host": {"Type": "HostSystem", "Value": "host-1"}}


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def alarm(on: dict[str, Any], seconds: float = 0, to: str = "red", **data: Any) -> CloudEvent:
    kind, moref = next((k, v) for k, v in on.items() if k != "Name")
    body = {
        "CreatedTime": at(seconds),
        "Alarm": {"Name": "VM CPU usage", "Alarm": {"Type": "Alarm", "Value": "alarm-6"}},
        "Entity": {"Name": on["Name"], "Entity": moref},
        kind: on,
        "From": "green",
        "To": to,
        **data,
    }
    return vsphere_event("AlarmStatusChangedEvent", body)


def storm_processor(threshold: int = 3, window: str = "5m") -> Any:
    settings = {"enabled": True, "threshold": threshold, "window": window}
    return alarm_storm(AlarmStormSettings.model_validate(settings))


# --- alarm storms ----------------------------------------------------------------------


def test_alarms_past_the_threshold_become_one_storm_event():
    runner = Runner(storm_processor(threshold=3))
    alarms = [alarm(VM1, seconds) for seconds in range(6)]
    out = runner.run(*alarms)

    assert [(e.get_type(), suppressed(e)) for e in out] == [
        *[("com.vmware.vsphere.AlarmStatusChangedEvent.v0", None)] * 3,
        ("com.vmware.vsphere.AlarmStatusChangedEvent.v0", "storm"),
        (ALARM_STORM_TYPE, None),
        *[("com.vmware.vsphere.AlarmStatusChangedEvent.v0", "storm")] * 2,
    ]
    summary = out[4]
    assert summary.get_id() == derived_id(alarms[3].get_id(), "alarm_storm", 1)
    assert summary.get_source() == alarms[3].get_source()
    data = data_of(summary)
    assert data["entity"] == {"name": "web01", "type": "VirtualMachine", "value": "vm-1"}
    assert (data["threshold"], data["count"], data["worst"]) == (3, 4, "red")
    assert data["alarms"] == [{"name": "VM CPU usage", "count": 4}]
    assert data["statuses"] == {"red": 4}
    assert (data["windowStart"], data["windowEnd"]) == (
        "2025-03-01T10:00:00Z",
        "2025-03-01T10:05:00Z",
    )
    assert data["firstTime"] == "2025-03-01T10:00:30Z"
    assert "More than 3 alarms on web01 within 5m" in data["message"]


def test_storms_are_per_entity_and_per_window_and_count_only_what_alerts():
    runner = Runner(storm_processor(threshold=2))
    # another VM's alarms, green ones and those of the next window do not add up
    out = runner.run(
        alarm(VM1, 0),
        alarm(VM2, 1),
        alarm(VM1, 2, to="green"),
        alarm(VM2, 3),
        alarm(VM1, 4),
        alarm(VM1, 300),
    )
    assert [suppressed(e) for e in out] == [None] * 6
    assert all(e.get_type() != ALARM_STORM_TYPE for e in out)


def test_storm_count_survives_a_restart_and_a_reread_decides_as_before():
    runner = Runner(storm_processor(threshold=2))
    alarms = [alarm(VM1, seconds) for seconds in range(5)]
    assert [suppressed(e) for e in runner.run(*alarms[:2])] == [None, None]

    runner.restart()  # mid-window: the count comes back from the changelog
    out = runner.run(*alarms[2:])
    assert [suppressed(e) for e in out] == ["storm", None, "storm", "storm"]
    summary_id = out[1].get_id()

    # read again after a crash before their offsets were committed: the same decisions,
    # the summary again with the same id (a detectable repeat), nothing counted twice
    again = runner.restart(redeliver=5)
    assert [suppressed(e) for e in again] == [None, None, "storm", None, "storm", "storm"]
    assert again[3].get_id() == summary_id
    [(_, _, state)] = runner.changelog("alarm-storms")[-1:]
    assert len(state["ids"]) == 3  # the first two and the one that started the storm


def test_alarms_suppressed_before_do_not_count_to_a_storm():
    silenced = [alarm(VM1, seconds, Host=HOST) for seconds in range(4)]
    runner = Runner(maintenance(MaintenanceSettings(enabled=True)), storm_processor(threshold=2))
    entered = vsphere_event("EnteredMaintenanceModeEvent", {"Host": HOST, "CreatedTime": at(0)})
    out = runner.run(entered, *silenced)
    assert [suppressed(e) for e in out[1:]] == ["maintenance"] * 4
    assert runner.changelog("alarm-storms") == []


# --- duplicates ------------------------------------------------------------------------


def test_a_repeat_is_dropped_before_and_after_a_restart():
    runner = Runner(duplicates(DuplicatesSettings(enabled=True, window=timedelta(minutes=10))))
    event = vsphere_event("VmPoweredOnEvent", {"Vm": VM1, "CreatedTime": at(0)})
    other = vsphere_event("VmPoweredOnEvent", {"Vm": VM1, "CreatedTime": at(1)})

    assert [e.get_id() for e in runner.run(event, event, other)] == [
        event.get_id(),
        other.get_id(),
    ]
    runner.restart()
    assert runner.run(event, other) == []


def test_a_record_read_again_at_its_offset_is_not_a_repeat():
    runner = Runner(duplicates(DuplicatesSettings(enabled=True)))
    event = vsphere_event("VmPoweredOnEvent", {"Vm": VM1, "CreatedTime": at(0)})
    runner.run(event, event)
    # a crash before either offset was committed: the first copy goes on (its outputs may
    # never have been written), the second is still a repeat
    assert [e.get_id() for e in runner.restart(redeliver=2)] == [event.get_id()]


def test_repeats_are_caught_within_the_window_and_forgotten_after_two():
    runner = Runner(duplicates(DuplicatesSettings(enabled=True, window=timedelta(minutes=1))))
    event = vsphere_event("VmPoweredOnEvent", {"Vm": VM1, "CreatedTime": at(0)})
    runner.run(event)
    # record time, not event time: a replay carries the event's time, not the record's
    assert runner.run(event, at=T0 + timedelta(seconds=59)) == []
    assert runner.run(event, at=T0 + timedelta(seconds=89)) == []  # the window after
    assert len(runner.run(event, at=T0 + timedelta(seconds=150))) == 1


def test_only_the_configured_types_are_checked():
    settings = DuplicatesSettings(enabled=True, types=["*Alarm*"])
    runner = Runner(duplicates(settings))
    event = vsphere_event("VmPoweredOnEvent", {"Vm": VM1, "CreatedTime": at(0)})
    assert len(runner.run(event, event)) == 2
    assert runner.changelog("duplicates-seen") == []


# --- maintenance mode ------------------------------------------------------------------


def host_event(name: str, seconds: float = 0) -> CloudEvent:
    return vsphere_event(name, {"Host": HOST, "CreatedTime": at(seconds)})


def test_alarms_on_a_host_in_maintenance_and_its_vms_are_suppressed_until_it_exits():
    runner = Runner(maintenance(MaintenanceSettings(enabled=True)))
    on_host = alarm(HOST, 10)
    on_vm = alarm(VM4, 11, Host=HOST)
    out = runner.run(host_event("EnteredMaintenanceModeEvent"), on_host, on_vm)
    assert [suppressed(e) for e in out] == [None, "maintenance", "maintenance"]
    # the VM's alarm is keyed by the VM, in another partition than the host's events:
    # the state is global, not co-partitioned
    assert runner.records[0].partition != runner.records[2].partition

    runner.restart()
    assert suppressed(runner.run(alarm(VM4, 20, Host=HOST))[0]) == "maintenance"
    out = runner.run(host_event("ExitMaintenanceModeEvent", 30), alarm(HOST, 40))
    assert [suppressed(e) for e in out] == [None, None]
    assert runner.changelog("hosts-in-maintenance")[-1][2] is None  # a tombstone


def test_vms_can_be_left_alone_and_maintenance_lapses_after_the_longest_duration():
    settings = MaintenanceSettings.model_validate(
        {"enabled": True, "includeVms": False, "maxDuration": "1h"}
    )
    runner = Runner(maintenance(settings))
    out = runner.run(
        host_event("EnteredMaintenanceModeEvent"),
        alarm(VM1, 10, Host=HOST),
        alarm(HOST, 3599),
        alarm(HOST, 3601),
    )
    assert [suppressed(e) for e in out] == [None, None, "maintenance", None]


def test_other_hosts_and_other_vcenters_are_not_silenced():
    runner = Runner(maintenance(MaintenanceSettings(enabled=True)))
    other_host = {"Name": "esx02", "Host": {"Type": "HostSystem", "Value": "host-2"}}
    out = runner.run(host_event("EnteredMaintenanceModeEvent"), alarm(other_host, 5))
    assert suppressed(out[1]) is None
