"""Avro single-object encoding of the fixed-shape records."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas import avro

CHECKPOINT = {
    "vcenterUuid": "0ce6e3d4-8d76-4a4e-9a43-5d6a5e8e1a01",
    "source": "https://vc01.example.com/sdk",
    "lastEventKey": 4_294_967_300,
    "lastEventTime": datetime(2024, 1, 17, 13, 2, 5, 426999, tzinfo=UTC),
    "updatedAt": datetime(2024, 1, 17, 13, 2, 6, tzinfo=UTC),
}


def test_checkpoint_round_trips() -> None:
    payload = avro.encode("checkpoint", CHECKPOINT)
    assert payload[:2] == b"\xc3\x01"
    assert avro.decode("checkpoint", payload) == CHECKPOINT


def test_unknown_schema_name_is_a_clear_error() -> None:
    with pytest.raises(avro.AvroError, match="no Avro schema 'nope'"):
        avro.encode("nope", {})


def test_record_missing_a_field_is_a_clear_error() -> None:
    record = {k: v for k, v in CHECKPOINT.items() if k != "source"}
    with pytest.raises(avro.AvroError, match="does not fit schema checkpoint"):
        avro.encode("checkpoint", record)


def test_payload_without_marker_is_rejected() -> None:
    with pytest.raises(avro.AvroError, match="single-object"):
        avro.decode("checkpoint", b"\x00" * 20)


def test_payload_from_unknown_schema_version_is_rejected() -> None:
    payload = avro.encode("checkpoint", CHECKPOINT)
    forged = payload[:2] + b"\x00" * 8 + payload[10:]
    with pytest.raises(avro.AvroError, match="unknown version of schema checkpoint"):
        avro.decode("checkpoint", forged)


def test_truncated_payload_is_rejected() -> None:
    payload = avro.encode("checkpoint", CHECKPOINT)
    with pytest.raises(avro.AvroError, match="corrupt checkpoint"):
        avro.decode("checkpoint", payload[:-12])
