"""The worker's fast path (`Reading`: headers read, data parsed only when asked) against
the cloudevents SDK's reading of the same record (`schemas.decode`): the same answers,
the same refusals, and through the pipeline the same outputs, where a record nothing
changed leaves as the exact bytes and headers it came with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cloudevents.core.v1.event import CloudEvent

import schemas
from schemas import InvalidRecord, KafkaRecord
from schemas.codec import encode_vsphere, with_changes
from schemas.deadletter import error_context
from schemas.vsphere import VCenterIdentity
from streams.api import processor, suppress
from streams.pipeline import Output, Pipeline
from streams.processors.vm_power import vm_power
from streams.reading import Reading, RecordEvent
from vcstream.settings import Settings

GOLDEN = sorted((Path(__file__).parents[1] / "schemas" / "golden").glob("*.json"))
VC = VCenterIdentity("5b5e7bf8-3a9b-4b8e-9f3c-0c2a4c6f1f10", "https://vc.local/sdk", "8.0.2.0")


def golden(path: Path) -> KafkaRecord:
    document = json.loads(path.read_text())
    record = encode_vsphere(document["data"], document["class"], VC)
    return KafkaRecord(record.value, record.key, record.headers, "vcenter.events", 2, 40)


def records() -> list[KafkaRecord]:
    return [golden(path) for path in GOLDEN]


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.stem)
def test_reading_answers_what_the_sdk_reads_from_the_same_record(path: Path) -> None:
    record = golden(path)
    sdk = schemas.decode(record)
    reading = Reading(record)
    reading.view.check(data=False)
    assert reading.get_id() == sdk.get_id()
    assert reading.get_type() == sdk.get_type()
    assert reading.get_source() == sdk.get_source()
    assert reading.get_subject() == sdk.get_subject()
    for name in ("eventclass", "vsphereapiversion", "suppressed"):
        assert reading.get_extension(name) == sdk.get_extension(name)
    assert reading.get_data() == sdk.get_data()
    built = reading.event()  # a RecordEvent: every getter answers as the SDK's event
    assert isinstance(built, CloudEvent)
    getters = [name for name in dir(CloudEvent) if name.startswith("get_")]
    assert len(getters) >= 11
    for name in getters:
        if name == "get_extension":
            for extension in ("eventclass", "vsphereapiversion", "time", "id", "nothing"):
                assert built.get_extension(extension) == sdk.get_extension(extension), extension
        else:
            assert getattr(built, name)() == getattr(sdk, name)(), name
    # what the SDK's bindings and with_changes read: the same record encoded again
    assert schemas.encode(built, record.key) == schemas.encode(sdk, record.key)
    changed = with_changes(built, type="com.example.Changed.v0")
    assert changed.get_attributes() == {**sdk.get_attributes(), "type": "com.example.Changed.v0"}


def test_reading_refuses_the_headers_the_sdk_refuses_and_leaves_data_unread() -> None:
    record = records()[0]
    missing = KafkaRecord(record.value, record.key, record.headers[1:])
    with pytest.raises(InvalidRecord):
        schemas.decode(missing)
    with pytest.raises(InvalidRecord):
        Reading(missing).view.check(data=False)
    # data that is not JSON passes the header check; it is refused once read
    garbled = KafkaRecord(b"{not json", record.key, record.headers)
    reading = Reading(garbled)
    reading.view.check(data=False)
    with pytest.raises(InvalidRecord, match="not valid JSON"):
        reading.get_data()
    with pytest.raises(InvalidRecord, match="not valid JSON"):
        schemas.decode(garbled)


@processor(output="vcenter.vm-power", types=["*"])
def every_event(event):
    return event


def outputs_both_ways(pipeline: Pipeline, record: KafkaRecord) -> tuple[list[Output], ...]:
    reading = pipeline.decode(record)
    assert isinstance(reading, Reading)
    fast = pipeline.outputs(reading, record, "vcenter.events")
    sdk = pipeline.outputs(schemas.decode(record), record, "vcenter.events", unchanged=True)
    return fast, sdk


@pytest.mark.parametrize("processors", [[], [vm_power], [every_event]], ids=["", "vm", "all"])
def test_pipeline_outputs_of_the_fast_path_equal_those_of_the_sdk_event(processors) -> None:
    routes = [
        {"name": "vm", "topic": "vms", "types": ["*.Vm*"]},
        {"name": "red", "topic": "red", "where": [{"field": "To", "equals": "red"}]},
        {"name": "all", "topic": "all"},
    ]
    pipeline = Pipeline(Settings.model_validate({"streams": {"routes": routes}}), processors)
    for record in records():
        fast, sdk = outputs_both_ways(pipeline, record)
        assert [(o.topic, o.record) for o in fast] == [(o.topic, o.record) for o in sdk]
        for output in fast:
            if output.topic in ("vms", "red", "all"):  # routed unchanged: the bytes read
                assert output.record.value is record.value
                assert output.record.headers == record.headers


def test_a_where_condition_on_data_that_is_not_json_raises_poison_to_the_caller() -> None:
    routes = [{"name": "red", "topic": "red", "where": [{"field": "To", "equals": "red"}]}]
    pipeline = Pipeline(Settings.model_validate({"streams": {"routes": routes}}), [])
    record = records()[0]
    garbled = KafkaRecord(b"[1, 2", record.key, record.headers, "vcenter.events", 0, 9)
    reading = pipeline.decode(garbled)
    assert isinstance(reading, Reading)
    with pytest.raises(InvalidRecord):
        pipeline.outputs(reading, garbled, "vcenter.events")
    # routed on the headers alone, it goes on as it came, unread
    everything = [{"name": "all", "topic": "all"}]
    plain = Pipeline(Settings.model_validate({"streams": {"routes": everything}}), [])
    [audit] = plain.outputs(reading, garbled, "vcenter.events")
    assert audit.record.value is garbled.value


def test_an_inline_processor_returning_its_event_keeps_the_bytes_and_a_marked_one_is_encoded():
    from streams.api import inline

    @inline(types=["*"])
    def passes(event):
        return event

    @inline(types=["*"])
    def marks(event):
        return suppress(event, "test")

    record = records()[0]
    route = {"name": "all", "topic": "all", "includeSuppressed": True}
    everything = {"streams": {"routes": [route]}}
    for item, same in ((passes, True), (marks, False)):
        pipeline = Pipeline(Settings.model_validate(everything), [item])
        reading = pipeline.decode(record)
        assert isinstance(reading, Reading)
        inlined = pipeline.inline(reading, record, "vcenter.events")
        [audit] = pipeline.outputs(inlined.event, record, "vcenter.events", inlined=inlined)
        assert (audit.record.value is record.value) is same
        assert schemas.decode(audit.record).get_extension("suppressed") == (
            None if same else "test"
        )


@pytest.mark.integration
def test_worker_dead_letters_a_record_whose_data_a_condition_reads_and_is_not_json(
    kafka, topic_name, tmp_path: Path
):
    from tests.streams.helpers import StreamsWorker, consume, produce, streams_config

    config = streams_config(tmp_path, kafka.bootstrap_servers, topic_name)
    worker = StreamsWorker(config)
    settings = worker.settings
    alarm = golden(next(path for path in GOLDEN if path.stem == "AlarmStatusChangedEvent"))
    # valid headers: only the alarms route's condition on data.To reads the value
    garbled = KafkaRecord(b"{not json", alarm.key, alarm.headers)
    after = golden(next(path for path in GOLDEN if path.stem == "VmPoweredOffEvent"))
    try:
        worker.start()
        produce(settings, settings.topics.events, [garbled, after])
        audit = consume(settings, settings.topics.audit, 1, settle=1)
        dead = consume(settings, settings.topics.dead_letter, 1, settle=1)
        code = worker.stop()
    finally:
        worker.stop()
    assert code == 0, worker.log()
    assert [r.header("ce_id") for r in audit] == [after.header("ce_id")]
    [letter] = dead
    assert letter.value == garbled.value and letter.header("ce_id") == alarm.header("ce_id")
    context = error_context(letter)
    assert (context["stage"], context["reason"]) == ("streams:decode", "poison")
    assert "not valid JSON" in context["exception.message"]


def test_the_record_event_overrides_every_public_method_of_the_sdk_event() -> None:
    # RecordEvent never calls CloudEvent.__init__: an SDK method it did not override would
    # read attributes that were never stored (an upgrade adding one fails here)
    public = {name for name in dir(CloudEvent) if not name.startswith("_")}
    assert public, "the SDK's CloudEvent has public methods"
    missing = sorted(name for name in public if name not in vars(RecordEvent))
    assert missing == []


def test_a_record_of_a_known_header_layout_with_a_bad_time_is_still_poison() -> None:
    # the pipeline checks a header set it has seen by id and time only (LayoutCheck): a
    # record that differs there is refused as the full check refuses it
    pipeline = Pipeline(Settings.model_validate({}), [])
    good = records()[0]
    assert isinstance(pipeline.decode(good), Reading)
    headers = [(n, b"yesterday" if n == "ce_time" else v) for n, v in good.headers]
    bad = KafkaRecord(good.value, good.key, headers, "vcenter.events", 2, 41)
    with pytest.raises(InvalidRecord) as refused:
        Reading(bad).view.check(data=False)
    out = pipeline.decode(bad)
    assert isinstance(out, Output)
    assert error_context(out.record)["reason"] == "poison"
    assert error_context(out.record)["exception.message"] == str(refused.value)
    again = KafkaRecord(good.value, good.key, good.headers, "vcenter.events", 2, 42)
    assert isinstance(pipeline.decode(again), Reading)
