"""Stateful processors on a real broker, across a worker killed in the middle of a window.

The worker is killed once everything it read is committed, so nothing is read again: what
it knows after the restart came from the tables' changelogs. Every record carries a
timestamp in one window (an hour), so the restart lands in the middle of it whatever the
clock says. Besides the three built-in processors, a user's processor keeps a count per
entity in a plain Table, also for an alarm released by the timer once its definition
came (outside the agent that read it).
"""

from __future__ import annotations

import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import schemas
from schemas.codec import encode_vsphere
from schemas.record import KafkaRecord
from schemas.vsphere import ALARM_STORM_TYPE, VCenterIdentity, derived_id
from streams.api import data_of, suppressed
from tests.role_process import wait_for
from tests.streams.helpers import (
    StreamsWorker,
    TopicReader,
    committed_through,
    decoded,
    definition_record,
    produce,
    streams_config,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

VC = VCenterIdentity("77777777-2222-3333-4444-555555555555", "https://vc.state/sdk", "8.0.3.0")
WINDOW_START = int(time.time()) // 3600 * 3600  # every record's timestamp is in this hour
THRESHOLD = 3
_keys = iter(range(1, 1 << 30))

COUNTING_PROCESSOR = """
from schemas.codec import with_changes
from streams.api import data_of, processor
from streams.state import Table

counts = Table("alarm-counts", default=int)

@processor(output="{output}", types=["*.AlarmStatusChangedEvent.*"], tables=[counts])
def alarm_counts(event):
    entity = data_of(event)["Entity"]["Name"]
    counts[entity] += 1
    return with_changes(event, data={{"entity": entity, "count": counts[entity]}}, type="count")
"""


def vm(value: str) -> dict[str, Any]:
    return {"Name": value, "Vm": {"Type": "VirtualMachine", "Value": value}}


def host(value: str) -> dict[str, Any]:
    return {"Name": value, "Host": {"Type": "HostSystem", "Value": value}}


def record(class_name: str, **data: Any) -> KafkaRecord:
    key = next(_keys)
    body = {"Key": key, "CreatedTime": "2025-03-01T10:00:00Z", **data}
    encoded = encode_vsphere(body, class_name, VC)
    # in the window, a second apart, in the order they are made
    stamp = (WINDOW_START + 60 + key) * 1000
    return KafkaRecord(encoded.value, encoded.key, encoded.headers, timestamp_ms=stamp)


def alarm(entity: dict[str, Any], alarm_id: str = "alarm-1", **data: Any) -> KafkaRecord:
    kind = "VirtualMachine" if "Vm" in entity else "HostSystem"
    argument = {"Name": entity["Name"], "Entity": {"Type": kind, "Value": entity["Name"]}}
    ref = {"Name": "cpu", "Alarm": {"Type": "Alarm", "Value": alarm_id}}
    return record("AlarmStatusChangedEvent", Entity=argument, Alarm=ref, To="red", **data)


def definition(alarm_id: str) -> KafkaRecord:
    info = {"Name": "cpu", "Alarm": {"Type": "Alarm", "Value": alarm_id}}
    return definition_record(VC.instance_uuid, VC.source, alarm_id, "cpu", info)


def copy(original: KafkaRecord, number: int) -> KafkaRecord:
    """The same record written again (a replay), told apart by a header the routes keep."""
    headers = [*original.headers, ("test-copy", str(number).encode())]
    return KafkaRecord(original.value, original.key, headers, timestamp_ms=original.timestamp_ms)


def id_of(item: KafkaRecord) -> str:
    return schemas.decode(item).get_id()


def enriched_id(item: KafkaRecord) -> str:
    return derived_id(id_of(item), "enrich_alarms")


def test_stateful_processors_carry_on_after_a_worker_killed_mid_window(
    kafka, topic_name, tmp_path: Path
):
    package = tmp_path / "counting"
    package.mkdir()
    (package / "__init__.py").write_text("")
    module = COUNTING_PROCESSOR.format(output=topic_name("counts"))
    (package / "counts.py").write_text(textwrap.dedent(module))
    config = streams_config(
        tmp_path,
        kafka.bootstrap_servers,
        topic_name,
        alarmStorm={"enabled": True, "threshold": THRESHOLD, "window": "1h"},
        duplicates={"enabled": True, "window": "1h"},
        maintenance={"enabled": True},
        processors={"packages": ["counting"]},
        enrichment={"waitForDefinition": "60s"},
    )
    worker = StreamsWorker(config, env={"PYTHONPATH": str(tmp_path)})
    settings = worker.settings
    topics = settings.topics

    storm = [alarm(vm("vm-1"), Vm=vm("vm-1"), Host=host("host-9")) for _ in range(5)]
    power_on = record("VmPoweredOnEvent", Vm=vm("vm-2"), Host=host("host-9"))
    entered = record("EnteredMaintenanceModeEvent", Host=host("host-1"))
    on_host = alarm(host("host-1"), Host=host("host-1"))
    on_its_vm = alarm(vm("vm-3"), Vm=vm("vm-3"), Host=host("host-1"))
    waits = alarm(vm("vm-4"), "alarm-2", Vm=vm("vm-4"))  # its definition comes later
    exited = record("ExitMaintenanceModeEvent", Host=host("host-1"))
    after_exit = alarm(host("host-1"), Host=host("host-1"))
    storm_id = derived_id(id_of(storm[THRESHOLD]), "alarm_storm", 1)

    worker.start()
    readers = [TopicReader(settings, topic) for topic in (topics.audit, topics.alarms)]
    audit, alarms = readers
    try:
        produce(settings, topics.alarm_definitions, [definition("alarm-1")])
        produce(settings, topics.events, [*storm[:2], power_on, copy(power_on, 1), entered])
        first = {enriched_id(storm[0]), enriched_id(storm[1]), id_of(power_on), id_of(entered)}
        wait_for(lambda: first <= audit.ids(), 60, "the first records")
        wait_for(lambda: committed_through(settings, topics.events), 30, "their offsets committed")
        worker.kill()

        worker.start()
        later = [*storm[2:], copy(power_on, 2), on_host, on_its_vm, waits]
        produce(settings, topics.events, later)
        held = {enriched_id(item) for item in [*storm[2:], on_host, on_its_vm]}
        wait_for(lambda: held <= audit.ids(), 60, "the records after the restart")
        produce(settings, topics.alarm_definitions, [definition("alarm-2")])
        produce(settings, topics.events, [exited, after_exit])
        last = {enriched_id(after_exit), enriched_id(waits), storm_id}
        wait_for(lambda: last <= alarms.ids(), 60, "the storm, the released and the last alarm")
        dropped = worker.metric(
            "vcstream_streams_events_dropped_total", {"processor": "duplicates"}
        )
        alarm_events = decoded(alarms.read(quiet=1))
        audit_records = audit.read(quiet=1)
    finally:
        worker.stop()
        for reader in readers:
            reader.close()

    # the storm went on counting where it was: three alarms, its summary, nothing more
    assert {event.get_id() for event in alarm_events} == {
        *(enriched_id(item) for item in storm[:THRESHOLD]),
        storm_id,
        enriched_id(waits),
        enriched_id(after_exit),
    }
    [summary] = [event for event in alarm_events if event.get_type() == ALARM_STORM_TYPE]
    assert data_of(summary)["count"] == THRESHOLD + 1
    assert data_of(summary)["entity"] == {"name": "vm-1", "type": "VirtualMachine", "value": "vm-1"}
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(WINDOW_START))
    assert data_of(summary)["windowStart"] == start

    by_id = {event.get_id(): event for event in decoded(audit_records)}
    # suppressed alarms are audited, marked with why they did not alert
    assert [suppressed(by_id[enriched_id(item)]) for item in storm] == [None] * 3 + ["storm"] * 2
    assert suppressed(by_id[enriched_id(on_host)]) == "maintenance"
    assert suppressed(by_id[enriched_id(on_its_vm)]) == "maintenance"  # keyed by the VM
    assert suppressed(by_id[enriched_id(after_exit)]) is None
    # neither copy of the power-on event got through, before or after the restart
    assert id_of(power_on) in by_id
    assert [r for r in audit_records if r.header("test-copy") is not None] == []
    assert dropped == 1  # the copy after the restart: what came before was not read again

    counts = decoded(TopicReader(settings, topic_name("counts")).read(quiet=1))
    by_entity: dict[str, list[int]] = {}
    for event in counts:
        by_entity.setdefault(data_of(event)["entity"], []).append(data_of(event)["count"])
    assert by_entity["vm-1"] == [1, 2, 3, 4, 5]  # the user's table came back too
    assert by_entity["vm-4"] == [1]  # counted when the timer released it
    assert TopicReader(settings, topics.dead_letter).read(quiet=1) == []


def test_records_read_again_after_a_kill_get_the_decisions_they_got_before(
    kafka, topic_name, tmp_path: Path
):
    # nothing is committed before the kill: the restarted worker reads every record again,
    # on the state the first run left in the changelogs
    config = streams_config(
        tmp_path,
        kafka.bootstrap_servers,
        topic_name,
        commitInterval="10m",
        alarmStorm={"enabled": True, "threshold": THRESHOLD, "window": "1h"},
        duplicates={"enabled": True, "window": "1h"},
    )
    worker = StreamsWorker(config)
    settings = worker.settings
    app_id, topics = settings.streams.app_id, settings.topics
    storm = [alarm(vm("vm-1"), Vm=vm("vm-1")) for _ in range(5)]
    power_on = record("VmPoweredOnEvent", Vm=vm("vm-2"))
    storm_id = derived_id(id_of(storm[THRESHOLD]), "alarm_storm", 1)

    worker.start()
    audit = TopicReader(settings, topics.audit)
    try:
        produce(settings, topics.alarm_definitions, [definition("alarm-1")])
        produce(settings, topics.events, [*storm, power_on, copy(power_on, 1)])
        first = {*(enriched_id(item) for item in storm), id_of(power_on)}
        wait_for(lambda: first <= audit.ids(), 60, "every record's outputs")
        # the first run's state is in the changelogs: the four alarms counted, every claim
        storms = TopicReader(settings, f"{app_id}-alarm-storms-changelog")
        claims = TopicReader(settings, f"{app_id}-duplicates-seen-changelog")
        wait_for(lambda: len(storms.read()) >= THRESHOLD + 1, 30, "the storm's state written")
        wait_for(lambda: len(claims.read()) >= len(storm) + 1, 30, "the claims written")
        storms.close()
        claims.close()
        assert not committed_through(settings, topics.events)
        worker.kill()

        worker.start()
        wait_for(lambda: len(audit.read()) >= 2 * len(first), 60, "the records read again")
        audit_records = audit.read(quiet=1)
        alarm_events = decoded(TopicReader(settings, topics.alarms).read(quiet=1))
    finally:
        worker.stop()
        audit.close()

    events = decoded(audit_records)
    for index, item in enumerate(storm):
        marks = {suppressed(e) for e in events if e.get_id() == enriched_id(item)}
        assert marks == {None if index < THRESHOLD else "storm"}, index
    assert {e.get_id() for e in alarm_events} == {
        *(enriched_id(item) for item in storm[:THRESHOLD]),
        storm_id,
    }
    # the original passed both times (its outputs might not have been written), the copy never
    assert sum(e.get_id() == id_of(power_on) for e in events) == 2
    assert [r for r in audit_records if r.header("test-copy") is not None] == []
