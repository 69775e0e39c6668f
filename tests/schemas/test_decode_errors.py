"""Every way a record can fail to be a vcstream CloudEvent raises InvalidRecord, saying how."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas import InvalidRecord, KafkaRecord, decode
from schemas.codec import encode_vsphere
from schemas.vsphere import VCenterIdentity

VCENTER = VCenterIdentity("vc-uuid", "https://vc01/sdk", "8.0.3.0")
DATA = {"Key": 7, "CreatedTime": datetime(2024, 5, 1, tzinfo=UTC).isoformat(), "UserName": "u"}


def valid() -> KafkaRecord:
    return encode_vsphere(DATA, "VmPoweredOnEvent", VCENTER)


def replaced(record: KafkaRecord, name: str, value: bytes | None) -> KafkaRecord:
    headers = [(k, v) for k, v in record.headers if k != name]
    if value is not None:
        headers.append((name, value))
    return KafkaRecord(record.value, record.key, headers)


def test_valid_record_decodes() -> None:
    assert decode(valid()).get_data() == DATA


@pytest.mark.parametrize("header", ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time"])
def test_missing_required_header(header: str) -> None:
    with pytest.raises(InvalidRecord, match=f"missing header {header}"):
        decode(replaced(valid(), header, None))


def test_record_without_any_cloudevent_header() -> None:
    with pytest.raises(InvalidRecord, match="not a binary-mode CloudEvent"):
        decode(KafkaRecord(value=b'{"Key": 1}', headers=[]))


def test_missing_content_type() -> None:
    with pytest.raises(InvalidRecord, match="content-type is 'missing'"):
        decode(replaced(valid(), "content-type", None))


def test_wrong_content_type() -> None:
    with pytest.raises(InvalidRecord, match="content-type is 'text/plain'"):
        decode(replaced(valid(), "content-type", b"text/plain"))


def test_content_type_with_charset_is_accepted() -> None:
    record = replaced(valid(), "content-type", b"application/json; charset=utf-8")
    assert decode(record).get_data() == DATA


def test_bad_json() -> None:
    record = KafkaRecord(b'{"Key": 7,', None, valid().headers)
    with pytest.raises(InvalidRecord, match="data is not valid JSON"):
        decode(record)


def test_data_not_utf8() -> None:
    record = KafkaRecord(b'{"Key": "\xff"}', None, valid().headers)
    with pytest.raises(InvalidRecord, match=r"data is not valid JSON: .*UTF-8"):
        decode(record)


def test_tombstone() -> None:
    with pytest.raises(InvalidRecord, match="tombstone"):
        decode(KafkaRecord(None, b"key", valid().headers))


def test_empty_value() -> None:
    with pytest.raises(InvalidRecord, match="value is empty"):
        decode(KafkaRecord(b"", b"key", valid().headers))


def test_header_not_utf8() -> None:
    with pytest.raises(InvalidRecord, match="header ce_source is not UTF-8"):
        decode(replaced(valid(), "ce_source", b"\xff\xfe"))


def test_unsupported_spec_version() -> None:
    with pytest.raises(InvalidRecord, match=r"unsupported CloudEvents spec version 0\.3"):
        decode(replaced(valid(), "ce_specversion", b"0.3"))


def test_unknown_spec_version() -> None:
    with pytest.raises(InvalidRecord, match="specversion"):
        decode(replaced(valid(), "ce_specversion", b"2.0"))


def test_bad_time() -> None:
    with pytest.raises(InvalidRecord, match="invalid CloudEvent attributes"):
        decode(replaced(valid(), "ce_time", b"yesterday"))


def test_empty_id() -> None:
    with pytest.raises(InvalidRecord, match="'id' must not be None or empty"):
        decode(replaced(valid(), "ce_id", b""))


def test_invalid_extension_name() -> None:
    record = valid().with_headers([("ce_Bad-Name", b"x")])
    with pytest.raises(InvalidRecord, match="bad-name"):
        decode(record)


def test_repeated_header_last_one_wins() -> None:
    record = valid().with_headers([("ce_type", b"com.example.other")])
    assert decode(record).get_type() == "com.example.other"
