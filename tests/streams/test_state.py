"""The stateful processor API without Kafka: tables in a user's module, inline processors
in the pipeline, `streams.testing`'s in-memory tables, discovery and settings."""

from __future__ import annotations

import sys
import textwrap
from datetime import UTC, datetime, timedelta

import pytest
from cloudevents.core.v1.event import CloudEvent

import schemas
from schemas.codec import with_changes
from schemas.deadletter import error_context
from schemas.record import KafkaRecord
from schemas.vsphere import ALARM_STORM_TYPE, derived_id
from streams.api import ProcessorOutputError, data_of, inline, processor, suppress, suppressed
from streams.discovery import DiscoveryError, builtin, processors_for
from streams.pipeline import Pipeline
from streams.processors.storm import alarm_storm
from streams.state import GlobalTable, StateError, Table
from streams.testing import Runner, run, vsphere_event
from vcstream.settings import Settings
from vcstream.settings.streams import AlarmStormSettings, StreamsSettings

T0 = datetime(2025, 3, 1, 10, 0, 0, tzinfo=UTC)
HOST = {"Name": "esx01", "Host": {"Type": "HostSystem", "Value": "host-19"}}


def power_on(vm: str, minutes: float = 0) -> CloudEvent:
    data = {
        "Vm": {"Name": vm, "Vm": {"Type": "VirtualMachine", "Value": vm}},
        "Host": HOST,
        "CreatedTime": (T0 + timedelta(minutes=minutes)).isoformat(),
    }
    return vsphere_event("VmPoweredOnEvent", data)


# A user's stateful processor, as the streams.state docstring shows it: a count per host
# in a tumbling window of an hour, an event when it reaches a threshold.
power_ons = Table("power-ons-per-host", default=int).tumbling(timedelta(hours=1))


@processor(output="vcenter.busy-hosts", types=["*.VmPoweredOnEvent.v0"], tables=[power_ons])
def busy_hosts(event: CloudEvent) -> CloudEvent | None:
    host = data_of(event)["Host"]["Name"]
    power_ons[host] += 1
    if power_ons[host].current() == 3:
        return with_changes(event, data={"host": host}, type="com.example.HostBusy.v0")
    return None


def test_a_users_windowed_table_counts_across_calls_and_restarts():
    runner = Runner(busy_hosts, partitions=1)  # one partition: every VM's count adds up
    assert runner.run(power_on("vm-1"), power_on("vm-2")) == []
    runner.restart()
    [busy] = runner.run(power_on("vm-3", minutes=5))
    assert data_of(busy) == {"host": "esx01"}
    assert busy.get_id() == derived_id(schemas.decode(runner.records[-1]).get_id(), "busy_hosts")
    assert runner.run(power_on("vm-4", minutes=70)) == []  # the next hour starts over
    # the changelog holds what Faust writes: the key with its window, the value
    partition, key, value = runner.changelog("power-ons-per-host")[0]
    assert (partition, key, value) == (0, ["esx01", [T0.timestamp(), T0.timestamp() + 3599.9]], 1)


def test_a_co_partitioned_table_shows_each_record_its_own_partitions_state():
    # vm-1 and vm-4 hash to different partitions of two: the same host, two counts
    runner = Runner(busy_hosts, partitions=2)
    runner.run(power_on("vm-1"), power_on("vm-4"), power_on("vm-1"), power_on("vm-4"))
    assert {r.partition for r in runner.records} == {0, 1}
    assert [value for _, _, value in runner.changelog("power-ons-per-host")] == [1, 1, 2, 2]


def test_a_hopping_window_counts_each_event_in_every_window_it_falls_in():
    recent = Table("recent-power-ons", default=int).hopping(timedelta(minutes=10), 300)

    @processor(output="counts", tables=[recent])
    def count(event: CloudEvent) -> CloudEvent:
        recent["all"] += 1
        # the latest window holding the event, and the one that started a step earlier
        counts = {"latest": recent["all"].current(), "earlier": recent["all"].delta(300)}
        return with_changes(event, data=counts, type="com.example.Count.v0")

    runner = Runner(count, partitions=1)
    out = runner.run(power_on("vm-1", minutes=1), power_on("vm-2", minutes=6))
    assert [data_of(e) for e in out] == [
        {"latest": 1, "earlier": 1},  # 10:01 is in the windows from 9:55 and from 10:00
        {"latest": 1, "earlier": 2},  # 10:06: from 10:05 (itself), from 10:00 (both)
    ]


def test_run_starts_with_empty_tables_each_time():
    assert run(busy_hosts, power_on("vm-1"), power_on("vm-2")) == []
    assert run(busy_hosts, power_on("vm-3")) == []


def test_a_table_used_outside_a_processor_says_what_to_do():
    orphan = Table("orphan")
    with pytest.raises(StateError, match=r"name it in its processor's tables=\[\.\.\.\]"):
        orphan["key"] = 1
    with pytest.raises(StateError, match="a GlobalTable has no windows"):
        GlobalTable("hosts").tumbling(60)
    with pytest.raises(ValueError, match="whole seconds"):
        Table("counts").tumbling(0.5)


def test_state_values_must_be_what_the_changelog_can_carry():
    bad = Table("bad")

    @inline(tables=[bad])
    def keeps_an_object(event: CloudEvent) -> CloudEvent:
        bad[event.get_id()] = object()
        return event

    with pytest.raises(TypeError):
        run(keeps_an_object, power_on("vm-1"))


# --- inline processors -----------------------------------------------------------------


def test_inline_result_the_event_marked_dropped_replaced_or_with_more():
    event = power_on("vm-1")

    @inline()
    def mark(e: CloudEvent) -> CloudEvent:
        return suppress(e, "testing")

    @inline()
    def drop(e: CloudEvent) -> None:
        return None

    @inline()
    def retype(e: CloudEvent) -> CloudEvent:
        return with_changes(e, type="com.example.Other.v0")

    @inline()
    def twice(e: CloudEvent) -> list[CloudEvent]:
        return [e, e]

    [marked] = run(mark, event)
    assert (marked.get_id(), suppressed(marked)) == (event.get_id(), "testing")
    assert run(drop, event) == []
    # another type is another fact: an id of its own, derived from the input's
    [other] = run(retype, event)
    assert other.get_id() == derived_id(event.get_id(), "retype", 0)
    with pytest.raises(ProcessorOutputError, match="returned its event twice"):
        run(twice, event)


def settings(**streams: object) -> Settings:
    return Settings.model_validate({"streams": streams})


def record_of(event: CloudEvent, offset: int = 0) -> KafkaRecord:
    encoded = schemas.encode(event, b"vc/VirtualMachine:vm-1")
    stamp = int((event.get_time() or T0).timestamp() * 1000)
    return KafkaRecord(
        encoded.value, encoded.key, encoded.headers, "vcenter.events", 0, offset, stamp
    )


def red_alarm(seconds: int) -> CloudEvent:
    vm = {"Name": "web01", "Vm": {"Type": "VirtualMachine", "Value": "vm-1"}}
    body = {
        "CreatedTime": (T0 + timedelta(seconds=seconds)).isoformat(),
        "Entity": {"Name": "web01", "Entity": vm["Vm"]},
        "Vm": vm,
        "Alarm": {"Name": "cpu", "Alarm": {"Type": "Alarm", "Value": "alarm-1"}},
        "To": "red",
    }
    return vsphere_event("AlarmStatusChangedEvent", body)


def test_pipeline_routes_a_suppressed_alarm_to_audit_only_and_a_storm_to_alarms():
    @inline(types=["*.AlarmStatusChangedEvent.v0"])
    def storm_now(e: CloudEvent) -> list[CloudEvent]:
        return [suppress(e, "storm"), with_changes(e, data={}, type=ALARM_STORM_TYPE)]

    pipeline = Pipeline(settings(alarmStorm={"enabled": True}), [storm_now])
    alarm = red_alarm(0)
    record = record_of(alarm)
    result = pipeline.inline(alarm, record, "vcenter.events")
    assert result.event is not None and suppressed(result.event) == "storm"
    outputs = pipeline.outputs(result.event, record, "vcenter.events", False, result)
    routed = [(o.topic, schemas.decode(o.record).get_type()) for o in outputs]
    assert routed == [
        ("vcenter.audit", "com.vmware.vsphere.AlarmStatusChangedEvent.v0"),
        ("vcenter.alarms", ALARM_STORM_TYPE),
        ("vcenter.audit", ALARM_STORM_TYPE),
    ]
    # added events keep the record's key: the storm stays with its entity's events
    assert {o.record.key for o in outputs} == {record.key}


def test_pipeline_dead_letters_a_failing_inline_processor_and_lets_the_event_pass():
    @inline()
    def broken(e: CloudEvent) -> CloudEvent:
        raise RuntimeError("bug in a filter")

    pipeline = Pipeline(settings(), [broken])
    event = red_alarm(0)
    record = record_of(event)
    result = pipeline.inline(event, record, "vcenter.events")
    assert result.event is event and result.added == []
    [dead] = result.dead
    assert error_context(dead.record)["stage"] == "streams:broken"
    outputs = pipeline.outputs(event, record, "vcenter.events", True, result)
    assert sorted(o.topic for o in outputs) == [
        "vcenter.alarms",
        "vcenter.audit",
        "vcstream.dead-letter",
    ]


def test_a_dropped_event_makes_nothing_and_other_topics_skip_inline_processors():
    @inline()
    def drop(e: CloudEvent) -> None:
        return None

    pipeline = Pipeline(settings(), [drop])
    event = red_alarm(0)
    result = pipeline.inline(event, record_of(event), "vcenter.events")
    assert result.event is None
    assert pipeline.outputs(None, record_of(event), "vcenter.events", inlined=result) == []
    assert pipeline.inline(event, record_of(event), "vcenter.alarms").event is event


def test_a_route_takes_suppressed_events_only_when_it_says_so():
    routes = [
        {"name": "alerts", "topic": "alerts"},
        {"name": "everything", "topic": "everything", "includeSuppressed": True},
    ]
    pipeline = Pipeline(settings(routes=routes), [])
    event = suppress(red_alarm(0), "storm")
    outputs = pipeline.outputs(event, record_of(event), "vcenter.events")
    assert [o.topic for o in outputs] == ["everything"]


# --- discovery and settings ------------------------------------------------------------


def test_built_in_processors_are_off_by_default_and_run_in_order_when_on():
    assert builtin(StreamsSettings()) == []
    on = StreamsSettings.model_validate(
        {
            "alarmStorm": {"enabled": True},
            "duplicates": {"enabled": True},
            "maintenance": {"enabled": True},
        }
    )
    assert [item.name for item in builtin(on)] == ["duplicates", "maintenance", "alarm_storm"]
    routes = on.effective_routes("alarms", "audit")
    assert [(r.name, r.include_suppressed) for r in routes] == [
        ("alarms", False),
        ("alarm-storms", False),
        ("audit", True),
    ]
    assert routes[1].types == [ALARM_STORM_TYPE]


def test_a_user_processor_cannot_take_a_built_in_name_or_a_table_name(tmp_path, monkeypatch):
    package = tmp_path / "clashing"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "storm.py").write_text(
        textwrap.dedent(
            """
            from streams.api import inline

            @inline()
            def alarm_storm(event):
                return event
            """
        )
    )
    (package / "tables.py").write_text(
        textwrap.dedent(
            """
            from streams.api import processor
            from streams.state import Table

            @processor(output="x", tables=[Table("alarm-storms")])
            def reuses_a_table_name(event):
                return None
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    on = {"alarmStorm": {"enabled": True}, "processors": {"packages": ["clashing"]}}
    with pytest.raises(DiscoveryError, match="named 'alarm_storm' like a built-in one"):
        processors_for(StreamsSettings.model_validate(on), "vcenter.events")
    on["processors"] = {"packages": ["clashing"], "disabled": ["alarm_storm"]}
    with pytest.raises(DiscoveryError, match="two tables are named 'alarm-storms'"):
        processors_for(StreamsSettings.model_validate(on), "vcenter.events")
    for name in ("clashing.storm", "clashing.tables", "clashing"):
        sys.modules.pop(name, None)


def test_windows_are_whole_seconds():
    with pytest.raises(ValueError, match="whole number of seconds"):
        AlarmStormSettings.model_validate({"window": "1500ms"})
    assert alarm_storm(AlarmStormSettings.model_validate({"window": "2m"})).tables[0].window
