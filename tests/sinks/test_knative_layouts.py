"""The Knative sink's requests built once per header layout (`RequestTemplate`) are the
bytes it builds for each record on its own (`request_for` and `HTTPClient.head`), for
every layout variant the layout checks know and every way the sink can be configured."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

import pytest

from schemas import InvalidRecord, KafkaRecord
from schemas.cloudevent import CloudEventView, LayoutCheck
from schemas.codec import encode_vsphere
from schemas.horizon import encode_horizon
from schemas.record import ConsumedRecord
from sinks.base import DeliveryError, Outcome, SinkEvent
from sinks.http_client import InvalidHeader
from sinks.knative import KnativeSink
from tests.replay.helpers import VCENTER, RecordMessage
from tests.replay.test_batch import every_case, placed
from tests.schemas.test_cloudevent_view import GOLDEN, golden_record
from tests.schemas.test_layout_check import CHANGES, consumed
from tests.sinks.helpers import vm_event
from vcstream.settings.sinks import KnativeSinkSettings

URL = "http://127.0.0.1:9/in?x=1"
AUTH = {"name": "Authorization", "value": "Bearer t0ken"}
CONFIGURATIONS: dict[str, dict[str, Any]] = {
    "binary": {},
    "event-router": {"typeFormat": "event-router"},
    "auth": {"auth": AUTH},
    "event-router with auth": {"typeFormat": "event-router", "auth": AUTH},
    "auth named ce-time": {"auth": {"name": "ce-time", "value": "fixed"}},
    "structured": {"contentMode": "structured"},
    "structured event-router": {"contentMode": "structured", "typeFormat": "event-router"},
}
TEMPLATED = {"binary", "event-router", "auth", "event-router with auth"}


def started(options: dict[str, Any]) -> KnativeSink:
    sink = KnativeSink(KnativeSinkSettings.model_validate({"url": URL, **options}))
    asyncio.run(sink.start())  # a client: no connection until a request is sent
    return sink


def records() -> list[KafkaRecord]:
    """Every layout variant of test_batch and test_layout_check, event-router's kinds
    (EventEx and ExtendedEvent: a subject from the data), Horizon, and attributes the
    HTTP binding percent-encodes."""
    _, messages = placed(every_case())
    made: list[KafkaRecord] = [ConsumedRecord(message) for message in messages]
    for path in GOLDEN:
        base = golden_record(path)
        made += [base, *(consumed(change(base)) for change in CHANGES.values()), base]
    for number, kind in enumerate(["EventEx", "ExtendedEvent", "EventEx", "VmPoweredOnEvent"]):
        data = {**vm_event(number), "EventTypeId": f"com.vmware.ev{number % 2}"}
        data["FullFormattedMessage"] = 'vm "ünï" 100% on\u2028'
        made.append(encode_vsphere(data, kind, VCENTER))
        # the same headers (so the same layout), another EventTypeId: another subject
        other = {**data, "EventTypeId": f"com.vmware.other{number}"}
        made.append(replace(made[-1], value=json.dumps(other).encode()))
    for number in range(3):
        horizon = {"id": number, "time": 1764700000123 + number, "type": "LOGIN", "severity": "X"}
        made.append(encode_horizon(horizon, "https://hz-01.example.com"))
    odd = made[-1]
    made.append(replace(odd, headers=[*odd.headers, ("ce_subject", 'Vm "ünï" 100%'.encode())]))
    made.append(replace(made[-1], headers=[*made[-1].headers[:-1], ("ce_subject", b"other")]))
    spaced = [(k, b"id with spaces %" if k == "ce_id" else v) for k, v in made[-1].headers]
    made.append(replace(made[-1], headers=spaced))
    return made


def checked(events: list[KafkaRecord]) -> list[SinkEvent]:
    """The records the sink runtime passes on, as it passes them (`BatchDelivery`)."""
    check = LayoutCheck().check
    items = []
    for record in events:
        item = SinkEvent(None, record)
        try:
            item.layout = check(item.view)
        except InvalidRecord:
            continue
        items.append(item)
    return items


def one_by_one(sink: KnativeSink, record: KafkaRecord) -> bytes:
    """The reference: the record's request built from its own headers alone."""
    view = CloudEventView(record)
    view.check()
    headers, body = sink.request_for(view)
    assert sink._client is not None
    return sink._client.head(headers, len(body)) + body


@pytest.mark.parametrize("name", CONFIGURATIONS)
def test_requests_built_per_layout_are_the_bytes_built_per_record(name: str) -> None:
    sink = started(CONFIGURATIONS[name])
    items = checked(records())
    templated = 0
    for item in items:
        if sink.template_for(item) is not None:
            templated += 1
        assert sink.request_bytes(item) == one_by_one(sink, item.record)
    if name in TEMPLATED:  # most records went the per-layout way
        assert templated > len(items) // 2
    else:
        assert templated == 0
    assert any(item.layout is not None for item in items)


def test_a_layout_whose_headers_would_split_the_request_is_refused_for_each_record() -> None:
    sink = started({})
    made = []
    for vm in (1, 2):  # two keys: neither is held behind the other
        record = encode_vsphere(vm_event(vm, vm=vm), "VmPoweredOnEvent", VCENTER)
        evil = [(k, v) for k, v in record.headers if k != "content-type"]
        evil.append(("content-type", b"application/json; x=1\r\nX-Evil: 1"))
        made.append(replace(record, headers=evil))
    items = checked(made)
    assert len(items) == 2 and items[0].layout is items[1].layout is not None
    assert items[0].record.key != items[1].record.key
    for item in items:
        with pytest.raises(InvalidHeader, match="content-type"):
            sink.request_bytes(item)

    async def deliver() -> list[Outcome]:
        try:
            return list(await sink.deliver(items))
        finally:
            await sink.close()

    for outcome in asyncio.run(deliver()):  # dead-lettered at once, no retry can help
        assert isinstance(outcome, DeliveryError) and not outcome.retryable
        assert "line break" in str(outcome)


def test_templates_are_kept_per_layout_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sinks.knative.MAX_LAYOUTS", 2)
    sink = started({})
    kinds = ["VmPoweredOnEvent", "VmPoweredOffEvent", "VmPoweredOnEvent", "VmRemovedEvent"]
    items = checked([encode_vsphere(vm_event(n), kind, VCENTER) for n, kind in enumerate(kinds)])
    templates = [sink.template_for(item) for item in items]
    assert templates[0] is templates[2] and templates[0] is not templates[1]
    assert len(sink._templates) <= 2
    for item in items:
        assert sink.request_bytes(item) == one_by_one(sink, item.record)


def test_raw_message_headers_without_a_value_are_sent_as_the_per_record_way() -> None:
    """A header confluent-kafka gives without a value (None) in a known layout."""
    sink = started({})
    base = encode_vsphere(vm_event(3), "VmPoweredOnEvent", VCENTER)
    raw = [(k, None if k == "ce_subject" else v) for k, v in base.headers]
    items = checked([ConsumedRecord(RecordMessage(base)), ConsumedRecord(RecordMessage(base, raw))])
    for item in items:
        assert sink.request_bytes(item) == one_by_one(sink, item.record)
