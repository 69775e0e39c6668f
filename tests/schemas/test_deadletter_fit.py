"""A dead letter always fits its topic: whatever the record, the copy is cut to fit and says so."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.deadletter import (
    DEFAULT_MAX_BYTES,
    MIN_MAX_BYTES,
    dead_letter,
    error_context,
    fit,
    record_size,
    usable_bytes,
)
from schemas.record import KafkaRecord

FITS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def sized(size: int, seed: int = 7) -> bytes:
    return hashlib.shake_256(seed.to_bytes(4, "big")).digest(size)


def untimed(record: KafkaRecord) -> KafkaRecord:
    """The record without its `time` header (two calls differ there by milliseconds)."""
    kept = [h for h in record.headers if h[0] != "vcstream.error.time"]
    return KafkaRecord(record.value, record.key, kept)


def letter(record: KafkaRecord, max_bytes: int | None) -> KafkaRecord:
    return dead_letter(
        record,
        stage="sink:knative",
        reason="poison",
        error=ValueError("x" * 10_000),  # a long message: capped, never the reason it overflows
        dest="http://broker/" + "p" * 5000,
        data=b"d" * 5000,
        attempts=3,
        max_bytes=max_bytes,
    )


@FITS
@given(
    value=st.integers(0, 3_000_000),
    key=st.integers(0, 40_000),
    headers=st.lists(st.integers(0, 20_000), max_size=30),
    max_bytes=st.integers(MIN_MAX_BYTES, 2 * DEFAULT_MAX_BYTES),
)
def test_every_dead_letter_fits_and_names_what_was_cut(
    value: int, key: int, headers: list[int], max_bytes: int
) -> None:
    original = KafkaRecord(
        sized(value),
        sized(key, 1) if key else None,
        [(f"h{i}", sized(size, i)) for i, size in enumerate(headers)],
        topic="vcenter.events",
        partition=3,
        offset=123456,
    )
    result = letter(original, max_bytes)
    assert record_size(result) <= usable_bytes(max_bytes)
    context = error_context(result)
    # the coordinates and the error always survive the cut
    assert (context["topic"], context["partition"], context["offset"]) == (
        "vcenter.events",
        "3",
        "123456",
    )
    assert (context["stage"], context["reason"]) == ("sink:knative", "poison")
    whole = letter(original, None)
    if record_size(whole) <= usable_bytes(max_bytes):
        assert untimed(result) == untimed(whole) and "truncated" not in context
        return
    cut = context["truncated"].split(",")
    assert set(cut) <= {"value", "key", "headers"} and cut
    assert result.value is not None and original.value is not None
    assert original.value.startswith(result.value)
    if "value" in cut:
        assert context["value.size"] == str(len(original.value))
        assert context["value.sha256"] == hashlib.sha256(original.value).hexdigest()
    else:
        assert result.value == original.value
    if "key" in cut:
        assert original.key is not None and result.key is not None
        assert original.key.startswith(result.key)
        assert context["key.sha256"] == hashlib.sha256(original.key).hexdigest()
    if "headers" in cut:
        kept = [h for h in result.headers if not h[0].startswith("vcstream.error.")]
        assert kept == original.headers[: len(kept)]
        assert int(context["headers.dropped"]) == len(original.headers) - len(kept)


def test_a_record_that_fits_is_dead_lettered_unchanged() -> None:
    original = KafkaRecord(b'{"Key": 1}', b"vc/vm-1", [("ce_id", b"1"), ("ce_type", b"t")])
    result = letter(original, DEFAULT_MAX_BYTES)
    assert result.value == original.value and result.key == original.key
    assert result.headers[:2] == original.headers
    assert "truncated" not in error_context(result)


def test_an_oversize_value_keeps_its_cloudevent_headers_and_a_prefix() -> None:
    value = sized(5_000_000)
    original = KafkaRecord(value, b"vc/vm-1", [("ce_id", b"1"), ("ce_type", b"t")])
    result = letter(original, DEFAULT_MAX_BYTES)
    context = error_context(result)
    assert context["truncated"] == "value"
    assert result.headers[:2] == original.headers and result.key == original.key
    assert result.value is not None and 0 < len(result.value) < DEFAULT_MAX_BYTES
    assert context["value.size"] == "5000000"


def test_fitting_twice_changes_nothing() -> None:
    once = letter(KafkaRecord(sized(2_000_000), None, []), DEFAULT_MAX_BYTES)
    assert fit(once, DEFAULT_MAX_BYTES) == once


def test_a_limit_too_small_for_the_error_headers_is_refused() -> None:
    with pytest.raises(ValueError, match="at least"):
        fit(KafkaRecord(b"x"), MIN_MAX_BYTES - 1)
