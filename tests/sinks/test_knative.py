"""The Knative sink against real receivers: a fault-injecting one parsed by the cloudevents
SDK, and the CloudEvents conformance tool's listener (Go, not written here)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import http as http_binding
from cloudevents.core.formats.json import JSONFormat

from devenv.process import cache_dir, free_port, wait_until
from schemas import decode
from schemas.codec import encode_vsphere, with_changes
from schemas.record import KafkaRecord
from sinks.knative import event_router_changes, parse_retry_after
from tests.sinks.helpers import (
    VCENTER,
    committed,
    dead_letter_contexts,
    make_runner,
    produce,
    run_until,
    settled,
    sink_settings,
    vm_event,
    vm_records,
)
from tests.sinks.receivers import (
    HANG,
    OK,
    RESET,
    Fault,
    Receiver,
    always,
    first,
    parse_cloudevent,
)

pytestmark = pytest.mark.integration
FAST = {"backoffDelay": "PT0.01S", "timeout": "PT2S"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(parse_cloudevent).start()
    yield server
    server.stop()


@pytest.fixture
def topics(topic_name: Any) -> tuple[str, str]:
    return topic_name("events"), topic_name("dlq")


def knative(kafka: Any, topics: tuple[str, str], url: str, **extra: Any) -> Any:
    extra.setdefault("delivery", dict(FAST))
    return sink_settings(
        kafka.bootstrap_servers, "knative", topics[1], topics=[topics[0]], url=url, **extra
    )


def ids(records: list[KafkaRecord]) -> list[str]:
    return [dict(r.headers)["ce_id"].decode() for r in records]


def test_knative_delivers_binary_cloudevents_in_key_order_and_commits(kafka, receiver, topics):
    records = vm_records(40, vms=4)
    produce(kafka.bootstrap_servers, topics[0], records)
    settings = knative(kafka, topics, receiver.url)
    runner = make_runner("knative", settings)

    run_until(runner, settled(runner, 40))

    got = [event.get_id() for event in receiver.accepted]
    assert sorted(got) == sorted(ids(records))
    assert all("ce-id" in headers for headers in receiver.request_headers)  # binary mode
    for vm in range(4):  # each key's events arrive in offset order
        suffix = f"vm-{vm}".encode()
        expected = [
            i
            for r, i in zip(records, ids(records), strict=True)
            if r.key and r.key.endswith(suffix)
        ]
        assert [i for i in got if i in expected] == expected
    assert receiver.accepted[0].get_data()["Vm"]["Vm"]["Value"]
    assert committed(kafka.bootstrap_servers, "vcstream-sink-knative", topics[0]) == 40
    assert dead_letter_contexts(kafka.bootstrap_servers, topics[1]) == []


def test_sink_survives_receiver_503_then_drains_backlog(kafka, receiver, topics):
    receiver.plan = first(15, Fault.http(503))
    produce(kafka.bootstrap_servers, topics[0], vm_records(30))
    delivery = {"backoffDelay": "PT0.05S"}
    runner = make_runner("knative", knative(kafka, topics, receiver.url, delivery=delivery))
    health_seen: set[str | None] = set()
    done = settled(runner, 30)

    def watch() -> bool:
        health_seen.add(runner.delivery_health())
        return done()

    run_until(runner, watch)

    assert (runner.report.delivered, runner.report.dead_lettered) == (30, 0)
    assert len({e.get_id() for e in receiver.accepted}) == 30  # none lost
    assert runner.report.retried >= 15
    assert "retrying: target answered HTTP 503" in health_seen  # /healthz said why
    assert runner.delivery_health() is None  # and recovered


def test_sink_survives_receiver_down_then_up(kafka, topics):
    port = free_port()
    produce(kafka.bootstrap_servers, topics[0], vm_records(20))
    runner = make_runner(
        "knative",
        knative(kafka, topics, f"http://127.0.0.1:{port}/", delivery={**FAST, "retry": 20}),
    )
    late = Receiver(parse_cloudevent)
    late.port = port

    def start_late() -> bool:
        if runner.report.retried >= 3 and not late._ready.is_set():
            late.start()  # connection refused until now
        return runner.report.delivered >= 20

    try:
        run_until(runner, start_late)
    finally:
        if late._ready.is_set():
            late.stop()
    assert (runner.report.delivered, runner.report.dead_lettered) == (20, 0)
    assert len({e.get_id() for e in late.accepted}) == 20


def test_sink_dead_letters_400_at_once_and_moves_on(kafka, receiver, topics):
    records = vm_records(10)
    bad_id = ids(records)[3]
    receiver.plan = lambda _n, event: Fault.http(400) if event.get_id() == bad_id else OK
    produce(kafka.bootstrap_servers, topics[0], records)
    runner = make_runner("knative", knative(kafka, topics, receiver.url))

    run_until(runner, settled(runner, 10))

    assert (runner.report.delivered, runner.report.dead_lettered, runner.report.retried) == (
        9,
        1,
        0,
    )
    [context] = dead_letter_contexts(kafka.bootstrap_servers, topics[1])
    assert context["reason"] == "delivery"
    assert context["status"] == "400"
    assert context["attempts"] == "1"
    assert context["offset"] == "3"
    assert context["stage"] == "sink:knative"
    assert context["dest"] == receiver.url


def test_sink_dead_letters_after_last_retry(kafka, receiver, topics):
    receiver.plan = always(Fault.http(500))
    produce(kafka.bootstrap_servers, topics[0], vm_records(1))
    delivery = {"backoffDelay": "PT0.01S", "retry": 3, "backoffPolicy": "linear"}
    runner = make_runner("knative", knative(kafka, topics, receiver.url, delivery=delivery))

    run_until(runner, settled(runner, 1))

    assert receiver.requests == 4  # first attempt + 3 retries
    [context] = dead_letter_contexts(kafka.bootstrap_servers, topics[1])
    assert (context["status"], context["attempts"]) == ("500", "4")
    assert committed(kafka.bootstrap_servers, "vcstream-sink-knative", topics[0]) == 1


def test_sink_honours_retry_after_on_429(kafka, receiver, topics):
    stamps: list[float] = []
    plan = first(1, Fault.http(429, Retry_After="1"))

    def stamped(number: int, body: object) -> Fault:
        stamps.append(time.monotonic())
        return plan(number, body)

    receiver.plan = stamped
    produce(kafka.bootstrap_servers, topics[0], vm_records(1))
    runner = make_runner("knative", knative(kafka, topics, receiver.url))

    run_until(runner, settled(runner, 1))

    assert (runner.report.delivered, runner.report.dead_lettered) == (1, 0)
    assert len(stamps) == 2
    # backoffDelay is 10 ms: only Retry-After explains a wait of a second
    assert stamps[1] - stamps[0] >= 0.95


def test_sink_survives_connection_resets_and_timeouts(kafka, receiver, topics):
    faults = {1: RESET, 2: HANG, 3: RESET}
    receiver.plan = lambda n, _body: faults.get(n, OK)
    produce(kafka.bootstrap_servers, topics[0], vm_records(5, vms=1))
    delivery = {**FAST, "timeout": "PT0.5S"}
    runner = make_runner("knative", knative(kafka, topics, receiver.url, delivery=delivery))

    run_until(runner, settled(runner, 5))

    assert (runner.report.delivered, runner.report.dead_lettered) == (5, 0)
    got = [e.get_id() for e in receiver.accepted]
    assert sorted(set(got)) == sorted(ids(vm_records(5, vms=1)))


def test_poison_record_goes_to_dead_letter_at_once(kafka, receiver, topics):
    poison = KafkaRecord(value=b"not json", key=b"k", headers=[("content-type", b"text/plain")])
    produce(kafka.bootstrap_servers, topics[0], [*vm_records(2), poison, *vm_records(2, start=3)])
    runner = make_runner("knative", knative(kafka, topics, receiver.url))

    run_until(runner, settled(runner, 5))

    assert (runner.report.delivered, runner.report.dead_lettered) == (4, 1)
    [context] = dead_letter_contexts(kafka.bootstrap_servers, topics[1])
    assert context["reason"] == "poison"
    assert "missing header" in context["exception.message"]
    assert context["offset"] == "2"


def test_structured_event_router_with_auth_and_type_filter(kafka, receiver, topics, monkeypatch):
    monkeypatch.setenv("BROKER_TOKEN", "Bearer s3cret-token")
    produce(kafka.bootstrap_servers, topics[0], vm_records(6))
    settings = knative(
        kafka,
        topics,
        receiver.url,
        contentMode="structured",
        typeFormat="event-router",
        auth={"name": "Authorization", "value": {"fromEnv": "BROKER_TOKEN"}},
        types=["com.vmware.vsphere.VmPowered*"],
    )
    runner = make_runner("knative", settings)

    run_until(runner, settled(runner, 6))

    assert runner.report.delivered == 6
    assert all("ce-id" not in h for h in receiver.request_headers)  # structured mode
    assert {h["authorization"] for h in receiver.request_headers} == {"Bearer s3cret-token"}
    event = receiver.accepted[0]
    assert event.get_type() == "com.vmware.event.router/event"
    assert event.get_subject() == "VmPoweredOnEvent"


def test_type_filter_skips_and_commits_other_types(kafka, receiver, topics):
    produce(kafka.bootstrap_servers, topics[0], vm_records(4))
    settings = knative(kafka, topics, receiver.url, types=["com.vmware.vsphere.Alarm*"])
    runner = make_runner("knative", settings)

    run_until(runner, settled(runner, 4))

    assert (runner.report.delivered, runner.report.filtered) == (0, 4)
    assert receiver.requests == 0
    assert committed(kafka.bootstrap_servers, "vcstream-sink-knative", topics[0]) == 4


def listened(path: Path) -> dict[str, Any]:
    """The events the conformance listener printed so far, by id (none while it is
    half-way through printing one)."""
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    except yaml.YAMLError:
        return {}
    return {d["ContextAttributes"]["id"]: d for d in documents}


def test_knative_interoperates_with_cloudevents_conformance_listener(kafka, topics, tmp_path):
    binary = cache_dir() / "bin" / "cloudevents"
    if not binary.exists():
        pytest.fail(f"{binary} missing: run deploy/local/install.sh")
    port = free_port()
    printed = tmp_path / "listener.yaml"
    out = printed.open("w")
    listener = subprocess.Popen(
        [str(binary), "listen", "-P", str(port)], stdout=out, stderr=subprocess.DEVNULL
    )
    records = vm_records(5)
    try:
        produce(kafka.bootstrap_servers, topics[0], records)
        runner = make_runner("knative", knative(kafka, topics, f"http://127.0.0.1:{port}/"))
        run_until(runner, settled(runner, 5))
        # the listener answers an event before it prints it: a stop right after the
        # sink's last answer once cut the fifth event from its output
        wait_until(lambda: len(listened(printed)) >= 5, 30, "the listener's five events")
    finally:
        listener.terminate()
        listener.wait(10)
        out.close()
    seen = listened(printed)
    assert set(seen) == set(ids(records))
    first_event = next(iter(seen.values()))
    assert first_event["ContextAttributes"]["type"] == "com.vmware.vsphere.VmPoweredOnEvent.v0"
    assert first_event["ContextAttributes"]["Extensions"]["Eventclass"] == "event"
    assert first_event["Mode"] == "binary"


def test_parse_retry_after_reads_seconds_and_http_dates():
    from datetime import UTC, datetime

    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_knative_posts_the_kafka_value_byte_for_byte_and_the_sdks_headers(kafka, receiver, topics):
    """Binary mode: the body is the record's value unchanged, the headers what the SDK's
    `to_binary` writes for the same event, including a value needing percent-encoding."""
    odd = vm_event(9)
    odd["FullFormattedMessage"] = 'vm "ünï" 100% on\u2028'
    records = [*vm_records(3), encode_vsphere(odd, "VmPoweredOnEvent", VCENTER)]
    # an attribute with characters the HTTP binding percent-encodes
    records[0] = KafkaRecord(
        records[0].value,
        records[0].key,
        [*records[0].headers, ("ce_subject", 'Vm "ünï" 100%'.encode())],
    )
    produce(kafka.bootstrap_servers, topics[0], records)
    runner = make_runner("knative", knative(kafka, topics, receiver.url))

    run_until(runner, settled(runner, 4))

    assert runner.report.delivered == 4 and receiver.rejected == []
    by_id = {
        h["ce-id"]: (h, body)
        for h, body in zip(receiver.request_headers, receiver.bodies, strict=True)
    }
    for record in records:
        headers, body = by_id[dict(record.headers)["ce_id"].decode()]
        assert body == record.value
        sdk = http_binding.to_binary(decode(record), JSONFormat()).headers
        sent = {k: v for k, v in headers.items() if k.startswith("ce-") or k == "content-type"}
        assert sent == sdk
    assert by_id[ids(records)[0]][0]["ce-subject"] == "Vm%20%22%C3%BCn%C3%AF%22%20100%25"
    subjects = {e.get_id(): e.get_subject() for e in receiver.accepted}
    assert subjects[ids(records)[0]] == 'Vm "ünï" 100%'  # the SDK reads it back


def sdk_event_router(event: BaseCloudEvent) -> BaseCloudEvent:
    """The reference: the event router's rewrite done on the SDK's decoded event."""
    attributes = event.get_attributes()
    kind = str(attributes.get("eventclass") or "event")
    data = event.get_data()
    changes: dict[str, Any] = {"type": "com.vmware.event.router/" + kind}
    if kind != "event" and isinstance(data, dict) and data.get("EventTypeId"):
        changes["subject"] = data["EventTypeId"]
    return with_changes(event, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize("class_name", ["VmPoweredOnEvent", "EventEx", "ExtendedEvent"])
def test_event_router_rewrite_equals_the_sdk_reference(class_name: str) -> None:
    data = {**vm_event(7), "EventTypeId": "com.vmware.cl.CreateLibraryEvent"}
    if class_name == "ExtendedEvent":
        data["EventTypeId"] = "com.vmware.vc.extended"
    record = encode_vsphere(data, class_name, VCENTER)
    expected = sdk_event_router(decode(record))
    changes = event_router_changes(record.cloudevent())
    headers, _ = record.cloudevent().http_binary(changes)
    assert headers == http_binding.to_binary(expected, JSONFormat()).headers
    if class_name != "VmPoweredOnEvent":
        assert headers["ce-subject"] == data["EventTypeId"]
        assert headers["ce-type"] == f"com.vmware.event.router/{class_name.lower()}"


def test_a_header_value_that_would_split_the_request_is_not_retried():
    import asyncio

    from sinks.base import SinkEvent
    from sinks.knative import KnativeSink
    from vcstream.settings.sinks import KnativeSinkSettings

    [record] = vm_records(1)
    evil = [(k, v) for k, v in record.headers if k != "content-type"]
    evil.append(("content-type", b"application/json; x=1\r\nX-Evil: 1"))
    split = KafkaRecord(record.value, record.key, evil)
    split.cloudevent().check()  # decode accepts it too: only HTTP cannot carry it
    sink = KnativeSink(KnativeSinkSettings(url=f"http://127.0.0.1:{free_port()}/"))

    async def deliver() -> list[object]:
        async with sink:
            return list(await sink.deliver([SinkEvent(None, split)]))

    [outcome] = asyncio.run(deliver())
    assert outcome is not None and not outcome.retryable  # type: ignore[attr-defined]
    assert "line break" in str(outcome)


def test_every_character_is_percent_encoded_as_the_http_binding_says() -> None:
    """CloudEvents HTTP binding 3.1.3.2: printable ASCII (U+0021-U+007E) stays as it
    is, except '"' and '%'; every other character is percent-encoded as its UTF-8 bytes.
    Checked one character at a time, so the shortcut that skips `quote` for values
    needing none can never let one through."""
    from urllib.parse import quote

    from schemas.cloudevent import percent_encode

    spec_safe = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"%')
    characters = [chr(c) for c in [*range(0x3000), 0xD7FF, 0xE000, 0xFFFD, 0x1F600, 0x10FFFF]]
    wrong = [
        (c, percent_encode(c))
        for c in characters
        if percent_encode(c) != quote(c, safe=spec_safe, encoding="utf-8")
    ]
    assert wrong == []
    assert percent_encode('a "b" 100%') == "a%20%22b%22%20100%25"
