"""The worker against a real broker: enrichment, routes, processors, dead letters, waits."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer

import schemas
from schemas.codec import encode_vsphere
from schemas.deadletter import error_context
from schemas.record import KafkaRecord
from schemas.vsphere import VCenterIdentity, derived_id
from streams.api import data_of
from streams.topics import prepare_topics
from tests.role_process import wait_for
from tests.streams.helpers import (
    StreamsWorker,
    consume,
    decoded,
    definition_record,
    produce,
    streams_config,
)
from vcstream.kafka import client_config

pytestmark = pytest.mark.integration

VC = VCenterIdentity("11111111-2222-3333-4444-555555555555", "https://vc.test/sdk", "8.0.3.0")
VM = {"Name": "web01", "Vm": {"Type": "VirtualMachine", "Value": "vm-42"}}
_keys = iter(range(1000, 1 << 30))


def vsphere(class_name: str, **data) -> KafkaRecord:
    body = {"Key": next(_keys), "CreatedTime": "2025-03-01T10:00:00.123456Z", "Vm": VM, **data}
    return encode_vsphere(body, class_name, VC)


def alarm(alarm_id: str, to: str, kind: str = "AlarmStatusChangedEvent") -> KafkaRecord:
    ref = {"Name": f"alarm {alarm_id}", "Alarm": {"Type": "Alarm", "Value": alarm_id}}
    return vsphere(kind, Alarm=ref, From="green", To=to)


def definition(alarm_id: str) -> KafkaRecord:
    info = {"Name": f"alarm {alarm_id}", "Alarm": {"Type": "Alarm", "Value": alarm_id}}
    return definition_record(VC.instance_uuid, VC.source, alarm_id, f"alarm {alarm_id}", info)


def id_of(record: KafkaRecord) -> str:
    return schemas.decode(record).get_id()


@pytest.fixture
def workers() -> Iterator[list[StreamsWorker]]:
    started: list[StreamsWorker] = []
    yield started
    for worker in started:
        worker.stop()


FAILING_PROCESSOR = """
from streams.api import processor

@processor(output="never.written", types=["com.vmware.vsphere.VmPoweredOnEvent.v0"])
def explodes(event):
    if event.get_data().get("Boom"):
        raise ValueError("boom in a user processor")
    return None
"""


def test_alarms_enriched_routed_and_bad_records_dead_lettered(
    kafka, topic_name, tmp_path: Path, workers
):
    package = tmp_path / "user_processors"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "failing.py").write_text(textwrap.dedent(FAILING_PROCESSOR))
    config = streams_config(
        tmp_path,
        kafka.bootstrap_servers,
        topic_name,
        processors={"packages": ["user_processors"]},
    )
    worker = StreamsWorker(config, env={"PYTHONPATH": str(tmp_path)})
    workers.append(worker)
    settings = worker.settings
    topics = settings.topics
    # the definition before the start: a worker is ready once it has read the definitions,
    # so no alarm waits for it. Produced after the start, it raced the alarms, and an alarm
    # read first waited while the events behind it went out (an audit out of order)
    prepare_topics(settings, [])
    produce(settings, topics.alarm_definitions, [definition("alarm-384")])
    worker.start()

    red = alarm("alarm-384", "red")
    green = alarm("alarm-384", "green")
    acknowledged = alarm("alarm-384", "red", kind="AlarmAcknowledgedEvent")
    poison = KafkaRecord(b"{definitely not json", b"k", [("ce_type", b"t")])
    boom = vsphere("VmPoweredOnEvent", Boom=True)
    powered_on = vsphere("VmPoweredOnEvent")
    produce(settings, topics.events, [red, poison, green, boom, acknowledged, powered_on])
    # read_committed: an aborted transaction's event is never processed
    aborted = vsphere("VmPoweredOffEvent")
    transactional = Producer(client_config(settings.kafka, **{"transactional.id": topic_name("t")}))
    transactional.init_transactions(30)
    transactional.begin_transaction()
    transactional.produce(
        topics.events, value=aborted.value, key=aborted.key, headers=list(aborted.headers)
    )
    transactional.flush(10)
    transactional.abort_transaction(30)
    after_abort = vsphere("VmPoweredOffEvent")
    produce(settings, topics.events, [after_abort])

    audit = decoded(consume(settings, topics.audit, 6, timeout=60, settle=2))
    alarms = decoded(consume(settings, topics.alarms, 1, timeout=30, settle=1))
    dead = consume(settings, topics.dead_letter, 2, timeout=30, settle=1)

    enriched_id = {
        id_of(r): derived_id(id_of(r), "enrich_alarms") for r in (red, green, acknowledged)
    }
    assert [e.get_id() for e in audit] == [
        enriched_id[id_of(red)],
        enriched_id[id_of(green)],
        id_of(boom),
        enriched_id[id_of(acknowledged)],
        id_of(powered_on),
        id_of(after_abort),
    ]
    assert id_of(aborted) not in {e.get_id() for e in audit}
    # only the change to red reaches the alarms topic, enriched like vsphere-alarm-server
    [red_out] = alarms
    assert red_out.get_id() == enriched_id[id_of(red)]
    assert red_out.get_type() == "com.vmware.vsphere.AlarmStatusChangedEvent.v0.AlarmInfo"
    assert data_of(red_out)["AlarmInfo"]["Name"] == "alarm alarm-384"
    assert data_of(red_out)["To"] == "red"
    assert audit[3].get_type() == "com.vmware.vsphere.AlarmAcknowledgedEvent.v0.AlarmInfo"
    # the poison record and the input the user processor choked on, unchanged, with context
    # (two partitions: the dead letters' order across them is not defined)
    by_value = {r.value: error_context(r) for r in dead}
    assert set(by_value) == {poison.value, boom.value} and len(dead) == 2
    poison_context, boom_context = by_value[poison.value], by_value[boom.value]
    assert poison_context["reason"] == "poison"
    assert poison_context["topic"] == topics.events
    assert boom_context["reason"] == "processing"
    assert boom_context["stage"] == "streams:explodes"
    assert boom_context["exception.class"] == "ValueError"
    assert boom_context["exception.message"] == "boom in a user processor"
    # the example module was discovered too and ran on both power-on events
    # (its output topic is shared by every test on the session broker: look for ours)
    mine = {derived_id(id_of(r), "vm_power", 0) for r in (boom, powered_on)}

    def power_ids() -> set[str]:
        return {id_of(r) for r in consume(settings, "vcenter.vm-power", 1 << 30, timeout=4)}

    wait_for(lambda: mine <= power_ids(), 40, "the example processor's outputs")

    assert worker.metric("vcstream_streams_alarms_enriched_total") == 3
    assert worker.metric("vcstream_streams_dead_lettered_total") == 2
    assert (
        worker.metric("vcstream_streams_events_out_total", {"processor": "route_by_type:alarms"})
        == 1
    )
    assert worker.stop() == 0


def test_definition_arriving_after_the_event_and_one_that_never_does(
    kafka, topic_name, tmp_path: Path, workers
):
    config = streams_config(
        tmp_path, kafka.bootstrap_servers, topic_name, enrichment={"waitForDefinition": "6s"}
    )
    worker = StreamsWorker(config)
    workers.append(worker)
    settings = worker.settings
    worker.start()
    late = alarm("alarm-1", "red")
    never = alarm("alarm-2", "yellow")
    after = vsphere("VmPoweredOnEvent")
    produce(settings, settings.topics.events, [late, never, after])
    wait_for(
        lambda: worker.metric("vcstream_streams_alarms_waiting") == 2, 30, "both alarms waiting"
    )
    produce(settings, settings.topics.alarm_definitions, [definition("alarm-1")])

    alarms = decoded(consume(settings, settings.topics.alarms, 2, timeout=30))
    # waiting alarms hold nothing else up: the event after them went through first
    audit = decoded(consume(settings, settings.topics.audit, 3, timeout=30, settle=1))
    assert audit[0].get_id() == id_of(after)

    by_id = {event.get_id(): event for event in alarms}
    enriched = by_id[derived_id(id_of(late), "enrich_alarms")]
    assert data_of(enriched)["AlarmInfo"]["Name"] == "alarm alarm-1"
    assert enriched.get_extension("enrichment") is None
    missing = by_id[derived_id(id_of(never), "enrich_alarms")]
    assert missing.get_extension("enrichment") == "missing"
    assert missing.get_type() == "com.vmware.vsphere.AlarmStatusChangedEvent.v0"
    assert "AlarmInfo" not in data_of(missing)
    assert worker.metric("vcstream_streams_enrichment_missing_total") == 1
    assert worker.metric("vcstream_streams_alarms_enriched_total") == 1
    assert worker.metric("vcstream_streams_alarms_waiting") == 0
