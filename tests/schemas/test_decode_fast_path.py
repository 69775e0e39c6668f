"""`schemas.decode` parses records itself rather than through the SDK's
`kafka_binding.from_binary` (for speed): it must accept, build and refuse exactly what
the SDK path does."""

from __future__ import annotations

import pytest
from cloudevents.core.bindings import kafka as kafka_binding

from schemas import InvalidRecord, KafkaRecord, decode
from schemas.codec import _FORMAT, PARTITION_KEY

HEADERS: dict[str, bytes] = {
    "ce_specversion": b"1.0",
    "ce_id": b"4d1f",
    "ce_source": b"https://vcsa/sdk",
    "ce_type": b"com.vmware.vsphere.VmPoweredOnEvent.v0",
    "ce_subject": b"VmPoweredOnEvent",
    "ce_eventclass": b"event",
    "content-type": b"application/json",
}


def through_sdk(headers: dict[str, bytes]) -> object:
    message = kafka_binding.KafkaMessage(headers=headers, key=None, value=b'{"Key": 1}')
    try:
        event = kafka_binding.from_binary(message, _FORMAT)
    except Exception as exc:
        return f"invalid CloudEvent attributes: {exc}"
    attributes = event.get_attributes()
    attributes.pop(PARTITION_KEY, None)
    return attributes, event.get_data()


def through_decode(headers: dict[str, bytes]) -> object:
    try:
        event = decode(KafkaRecord(b'{"Key": 1}', b"k", list(headers.items())))
    except InvalidRecord as exc:
        return str(exc)
    return event.get_attributes(), event.get_data()


@pytest.mark.parametrize(
    "time",
    [
        b"2026-01-01T10:20:30Z",
        b"2026-01-01T10:20:30.123456Z",
        b"2026-01-01T10:20:30.5+02:00",
        b"2026-01-01T10:20:30-05:30",
        b"2026-01-01T10:20:30",  # no zone: isoparse's rule, naive
        b"20260101T102030Z",  # ISO basic format: only isoparse reads it
        b"2026-02-30T10:20:30Z",  # RFC 3339 shape, impossible date: isoparse's error
        b"yesterday",
    ],
)
def test_decode_agrees_with_the_sdk_on_every_time_form(time: bytes) -> None:
    headers = {**HEADERS, "ce_time": time}
    ours, sdks = through_decode(headers), through_sdk(headers)
    assert ours == sdks
    if isinstance(ours, tuple):
        assert ours[0]["time"].utcoffset() == sdks[0]["time"].utcoffset()  # type: ignore[index]


def test_decode_refuses_a_non_utf8_header_as_the_sdk_does() -> None:
    headers = {**HEADERS, "ce_time": b"2026-01-01T10:20:30Z", "traceparent": b"\xff\xfe"}
    ours = through_decode(headers)
    assert isinstance(ours, str) and ours == through_sdk(headers)
