"""One record through the pipeline, without Kafka: routes, processors, dead letters."""

from __future__ import annotations

import schemas
from schemas.deadletter import error_context
from schemas.record import KafkaRecord
from streams.api import processor
from streams.pipeline import Output, Pipeline
from streams.testing import vsphere_event
from vcstream.settings import Settings


def settings(**streams) -> Settings:
    return Settings.model_validate({"streams": streams})


def record_of(event, key=b"vc/VirtualMachine:vm-42") -> KafkaRecord:
    encoded = schemas.encode(event, key)
    return KafkaRecord(encoded.value, encoded.key, encoded.headers, "vcenter.events", 3, 17)


@processor(output="vcenter.vm-power", types=["*VmPoweredOnEvent*"])
def fails(event):
    raise RuntimeError("bug in a user processor")


def test_poison_record_becomes_a_dead_letter_naming_what_is_wrong():
    pipeline = Pipeline(settings(), [])
    record = KafkaRecord(b"{not json", b"k", [("ce_type", b"x")], "vcenter.events", 0, 5)
    out = pipeline.decode(record)
    assert isinstance(out, Output)
    assert out.topic == "vcstream.dead-letter"
    assert out.record.value == record.value and out.record.key == record.key
    context = error_context(out.record)
    assert context["reason"] == "poison"
    assert context["stage"] == "streams:decode"
    assert "missing header" in context["exception.message"]
    assert (context["topic"], context["partition"], context["offset"]) == (
        "vcenter.events",
        "0",
        "5",
    )


def test_raising_processor_dead_letters_the_input_and_routes_still_run():
    pipeline = Pipeline(settings(), [fails])
    event = vsphere_event("VmPoweredOnEvent")
    outputs = pipeline.outputs(event, record_of(event), "vcenter.events")
    assert [o.topic for o in outputs] == ["vcenter.audit", "vcstream.dead-letter"]
    context = error_context(outputs[1].record)
    assert context["stage"] == "streams:fails"
    assert context["reason"] == "processing"
    assert context["exception.class"] == "RuntimeError"
    assert context["exception.message"] == "bug in a user processor"
    assert context["offset"] == "17"
    # the dead letter is the original record, with the same key
    assert outputs[1].record.value == record_of(event).value


def test_routes_copy_the_event_with_its_key():
    custom = settings(
        routes=[
            {"name": "vm", "topic": "vm-topic", "subjects": ["Vm*"]},
            {"name": "all", "topic": "all-topic"},
        ]
    )
    pipeline = Pipeline(custom, [])
    event = vsphere_event("VmPoweredOnEvent")
    outputs = pipeline.outputs(event, record_of(event), "vcenter.events")
    assert [o.topic for o in outputs] == ["vm-topic", "all-topic"]
    assert all(o.record.key == b"vc/VirtualMachine:vm-42" for o in outputs)
    assert schemas.decode(outputs[0].record).get_id() == event.get_id()
    assert pipeline.output_topics == ["all-topic", "vcstream.dead-letter", "vm-topic"]


def test_processor_on_another_topic_gets_its_own_input():
    @processor(output="copies", topic="vcenter.alarms")
    def copy(event):
        return event

    pipeline = Pipeline(settings(), [copy])
    assert pipeline.input_topics == ["vcenter.alarms", "vcenter.events"]
    event = vsphere_event("AlarmStatusChangedEvent", {"To": "red"})
    outputs = pipeline.outputs(event, record_of(event), "vcenter.alarms")
    assert [o.topic for o in outputs] == ["copies"]


def test_enrichment_applies_to_the_events_topic_only_and_can_be_disabled():
    event = vsphere_event(
        "AlarmStatusChangedEvent", {"Alarm": {"Alarm": {"Type": "Alarm", "Value": "alarm-1"}}}
    )
    assert Pipeline(settings(), []).alarm_to_enrich(event, "vcenter.events") is not None
    assert Pipeline(settings(), []).alarm_to_enrich(event, "vcenter.alarms") is None
    disabled = Pipeline(settings(enrichment={"enabled": False}), [])
    assert disabled.alarm_to_enrich(event, "vcenter.events") is None


def test_unchanged_event_is_routed_as_the_bytes_read_not_encoded_again():
    pipeline = Pipeline(settings(), [])
    event = vsphere_event("VmPoweredOnEvent")
    record = record_of(event)
    # a time written with an offset: re-encoding would write it in UTC instead
    headers = [
        (n, b"2026-11-22T21:41:57.891+01:00" if n == "ce_time" else v) for n, v in record.headers
    ]
    record = KafkaRecord(record.value, record.key, headers, "vcenter.events", 3, 17)
    decoded = schemas.decode(record)
    [audit] = pipeline.outputs(decoded, record, "vcenter.events", unchanged=True)
    assert audit.record.value == record.value
    assert audit.record.headers == record.headers
    # the same event, encoded afresh, when the caller does not say it is unchanged
    [fresh] = pipeline.outputs(decoded, record, "vcenter.events")
    assert dict(fresh.record.headers)["ce_time"] != b"2026-11-22T21:41:57.891+01:00"
    assert schemas.decode(fresh.record).get_time() == decoded.get_time()


def test_record_with_headers_decode_forgives_is_encoded_again_when_routed():
    pipeline = Pipeline(settings(), [])
    event = vsphere_event("VmPoweredOnEvent")
    record = record_of(event)
    upper_case = [(n.upper() if n == "ce_subject" else n, v) for n, v in record.headers]
    repeated = [("ce_id", b"overridden by the later one"), *record.headers]  # the last wins
    for headers in (upper_case, repeated):
        read = KafkaRecord(record.value, record.key, headers, "vcenter.events", 3, 17)
        [audit] = pipeline.outputs(schemas.decode(read), read, "vcenter.events", unchanged=True)
        names = [name for name, _ in audit.record.headers]
        assert names == sorted(set(names), key=names.index)  # no repeats
        assert all(name.islower() for name in names)
        assert schemas.decode(audit.record).get_id() == event.get_id()


def test_changed_event_is_encoded_once_for_every_route_it_takes():
    pipeline = Pipeline(settings(), [])
    event = vsphere_event("AlarmStatusChangedEvent", {"To": "red"})
    changed = schemas.codec.with_changes(event, type=event.get_type() + ".AlarmInfo")
    outputs = pipeline.outputs(changed, record_of(event), "vcenter.events")
    assert [o.topic for o in outputs] == ["vcenter.alarms", "vcenter.audit"]
    assert outputs[0].record is outputs[1].record
    assert schemas.decode(outputs[0].record).get_type().endswith(".AlarmInfo")


def test_events_in_and_out_are_counted_per_step_and_type_as_prometheus_reads_them():
    from prometheus_client import REGISTRY, generate_latest

    pipeline = Pipeline(settings(), [])
    event = vsphere_event("VmPoweredOnEvent")
    labels = {"processor": "route_by_type:audit", "type": event.get_type()}

    def count(name: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = count("vcstream_streams_events_in_total"), count("vcstream_streams_events_out_total")
    for _ in range(3):
        pipeline.outputs(event, record_of(event), "vcenter.events")
    after = count("vcstream_streams_events_in_total"), count("vcstream_streams_events_out_total")
    assert (after[0] - before[0], after[1] - before[1]) == (3, 3)
    exposition = generate_latest(REGISTRY).decode()
    assert "# TYPE vcstream_streams_events_in_total counter" in exposition
