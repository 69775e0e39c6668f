"""`CloudEventView` against the cloudevents SDK: the same record, read both ways, must
give the same HTTP headers, the same structured event, and the same refusals."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import http as http_binding
from cloudevents.core.formats.json import JSONFormat

from schemas import InvalidRecord, KafkaRecord, decode
from schemas.codec import encode_vsphere
from schemas.vsphere import VCenterIdentity

SDK_FORMAT = JSONFormat()
GOLDEN = sorted((Path(__file__).parent / "golden").glob("*.json"))
VCENTER = VCenterIdentity(
    instance_uuid="5b5e7bf8-3a9b-4b8e-9f3c-0c2a4c6f1f10",
    source="https://vcenter.local/sdk",
    api_version="8.0.2.0",
)


def golden_record(path: Path) -> KafkaRecord:
    document = json.loads(path.read_text())
    return encode_vsphere(document["data"], document["class"], VCENTER)


def fields(event: BaseCloudEvent) -> tuple[dict[str, Any], Any]:
    return event.get_attributes(), event.get_data()


def replaced(record: KafkaRecord, **headers: bytes | None) -> KafkaRecord:
    """The record with headers replaced (None: removed); `content_type` is content-type."""
    changes = {name.replace("content_type", "content-type"): v for name, v in headers.items()}
    kept = [(k, v) for k, v in record.headers if k not in changes]
    added = [(k, v) for k, v in changes.items() if v is not None]
    return KafkaRecord(record.value, record.key, kept + added)


@pytest.fixture(scope="module")
def record() -> KafkaRecord:
    return golden_record(GOLDEN[0])


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.stem)
def test_binary_mode_is_the_sdks_headers_and_the_kafka_value_unchanged(path: Path) -> None:
    record = golden_record(path)
    headers, body = record.cloudevent().http_binary()
    sdk = http_binding.to_binary(decode(record), SDK_FORMAT)
    assert headers == sdk.headers
    assert body is record.value  # the bytes Kafka holds, not a copy re-encoded
    assert len(body) < len(sdk.body)  # the SDK's stdlib json writes it spaced
    parsed = http_binding.from_binary(http_binding.HTTPMessage(headers, body), SDK_FORMAT)
    assert fields(parsed) == fields(decode(record))


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.stem)
def test_structured_mode_is_the_sdks_event_with_the_data_inserted_as_is(path: Path) -> None:
    record = golden_record(path)
    assert record.value is not None
    headers, body = record.cloudevent().http_structured()
    sdk = http_binding.to_structured(decode(record), SDK_FORMAT)
    assert headers == sdk.headers
    assert json.loads(body) == json.loads(sdk.body)
    assert record.value in body  # inserted, not re-encoded
    parsed = http_binding.from_structured(http_binding.HTTPMessage(headers, body), SDK_FORMAT)
    assert fields(parsed) == fields(decode(record))


def test_header_values_are_percent_encoded_as_the_sdk_does(record: KafkaRecord) -> None:
    subject = 'Vm "ünïcode" 100% done\tnow'
    odd = replaced(record, ce_subject=subject.encode())
    headers, _ = odd.cloudevent().http_binary()
    assert headers["ce-subject"] == "Vm%20%22%C3%BCn%C3%AFcode%22%20100%25%20done%09now"
    assert headers == http_binding.to_binary(decode(odd), SDK_FORMAT).headers
    back = http_binding.from_binary(http_binding.HTTPMessage(headers, b"{}"), SDK_FORMAT)
    assert back.get_subject() == subject


def test_changes_replace_attributes_in_both_modes(record: KafkaRecord) -> None:
    view = record.cloudevent()
    headers, _ = view.http_binary({"type": "t/1", "subject": "a b"})
    assert (headers["ce-type"], headers["ce-subject"]) == ("t/1", "a%20b")
    _, body = view.http_structured({"type": "t/1"})
    assert json.loads(body)["type"] == "t/1"
    assert view.type != "t/1"  # the record's own attributes are untouched


def test_a_time_in_another_form_passes_on_as_the_same_instant(record: KafkaRecord) -> None:
    odd = replaced(record, ce_time=b"2026-01-01T13:20:30.5+02:00")
    headers, _ = odd.cloudevent().http_binary()
    sdk = http_binding.to_binary(decode(odd), SDK_FORMAT).headers
    assert headers["ce-time"] == "2026-01-01T13:20:30.5+02:00"  # the record's text
    assert sdk["ce-time"] == "2026-01-01T13:20:30.500000+02:00"
    ours = http_binding.from_binary(http_binding.HTTPMessage(headers, b"{}"), SDK_FORMAT)
    theirs = http_binding.from_binary(http_binding.HTTPMessage(sdk, b"{}"), SDK_FORMAT)
    assert fields(ours) == fields(theirs)


def test_structured_mode_puts_non_json_data_in_data_base64(record: KafkaRecord) -> None:
    binary = KafkaRecord(b"\x00\xffraw", record.key, record.headers)
    odd = replaced(binary, content_type=b"application/octet-stream")
    headers, body = odd.cloudevent().http_structured()
    document = json.loads(body)
    assert "data" not in document
    assert base64.b64decode(document["data_base64"]) == b"\x00\xffraw"
    parsed = http_binding.from_structured(http_binding.HTTPMessage(headers, body), SDK_FORMAT)
    assert parsed.get_data() == b"\x00\xffraw"
    assert parsed.get_datacontenttype() == "application/octet-stream"


def test_repeated_headers_and_case_are_read_as_the_sdk_reads_them(record: KafkaRecord) -> None:
    odd = KafkaRecord(record.value, record.key, [*record.headers, ("ce_subject", b"second")])
    assert odd.cloudevent().get("subject") == "second" == decode(odd).get_subject()


REFUSALS: dict[str, dict[str, bytes | None]] = {
    "missing id": {"ce_id": None},
    "missing time": {"ce_time": None},
    "empty id": {"ce_id": b""},
    "empty source": {"ce_source": b""},
    "empty type": {"ce_type": b""},
    "empty subject": {"ce_subject": b""},
    "spec version 0.3": {"ce_specversion": b"0.3"},
    "spec version 2.0": {"ce_specversion": b"2.0"},
    "time without zone": {"ce_time": b"2026-01-01T10:20:30"},
    "time not a time": {"ce_time": b"yesterday"},
    "impossible date": {"ce_time": b"2026-02-30T10:20:30Z"},
    "extension with a dash": {"ce_v-sphere": b"x"},
    "extension named data": {"ce_data": b"x"},
    "empty dataschema": {"ce_dataschema": b""},
    "non-UTF-8 ce header": {"ce_subject": b"\xff"},
    "non-UTF-8 other header": {"traceparent": b"\xfe\xff"},
    "text content": {"content_type": b"text/plain"},
    "no content-type": {"content_type": None},
}
ACCEPTED: dict[str, dict[str, bytes | None]] = {
    "as written": {},
    "basic ISO time": {"ce_time": b"20260101T102030Z"},
    "time with offset": {"ce_time": b"2026-01-01T10:20:30-05:30"},
    "json with charset": {"content_type": b"application/json; charset=utf-8"},
    "digit extension": {"ce_ext2": b"x"},
    "extension in capitals (lowercased)": {"ce_vSphere": b"x"},
}


def agree(record: KafkaRecord) -> bool:
    """Whether `check` and `decode` agree; returns whether the record was accepted."""
    try:
        decode(record)
        sdk_accepts = True
    except InvalidRecord:
        sdk_accepts = False
    try:
        record.cloudevent().check()
        ours = True
    except InvalidRecord:
        ours = False
    assert ours == sdk_accepts
    return ours


@pytest.mark.parametrize("headers", REFUSALS.values(), ids=list(REFUSALS))
def test_check_refuses_what_decode_refuses(
    record: KafkaRecord, headers: dict[str, bytes | None]
) -> None:
    assert not agree(replaced(record, **headers))


@pytest.mark.parametrize("headers", ACCEPTED.values(), ids=list(ACCEPTED))
def test_check_accepts_what_decode_accepts(
    record: KafkaRecord, headers: dict[str, bytes | None]
) -> None:
    assert agree(replaced(record, **headers))


@pytest.mark.parametrize("value", [None, b"", b"not json", b'{"Key": 1', b"\xff"])
def test_check_refuses_values_decode_refuses(record: KafkaRecord, value: bytes | None) -> None:
    assert not agree(KafkaRecord(value, record.key, record.headers))


def test_check_accepts_a_value_of_any_json_type(record: KafkaRecord) -> None:
    assert agree(KafkaRecord(b"[1, 2]", record.key, record.headers))
