"""`LayoutCheck` gives every record the verdict, the reason and the attributes that
`CloudEventView.check` gives it (which test_cloudevent_view.py holds to the SDK), also
for records one change away from a layout it knows, and reads accepted records as the
SDK does, field for field."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cloudevents.core.bindings import http as http_binding
from confluent_kafka import Message

from schemas import InvalidRecord, KafkaRecord, decode
from schemas.cloudevent import CloudEventView, HeaderLayouts, LayoutCheck
from schemas.record import ConsumedRecord
from tests.schemas.test_cloudevent_view import GOLDEN, SDK_FORMAT, fields, golden_record

Change = Callable[[KafkaRecord], KafkaRecord]


def setting(name: str, value: bytes | None) -> Change:
    """The header `name` given `value` where it stands (None: a header without a value,
    as confluent-kafka gives it; a `KafkaRecord` never holds one otherwise)."""
    return lambda r: replace(r, headers=[(k, value if k == name else v) for k, v in r.headers])  # type: ignore[misc]


def without(name: str) -> Change:
    return lambda r: replace(r, headers=[(k, v) for k, v in r.headers if k != name])


def adding(name: str, value: bytes) -> Change:
    return lambda r: replace(r, headers=[*r.headers, (name, value)])


# one change each to a record of a known layout; every refusal reason `check` has
CHANGES: dict[str, Change] = {
    "another id": setting("ce_id", b"another-id"),
    "id with quotes and unicode": setting("ce_id", 'a"b\\c \u00e9\u2603\n'.encode()),
    "empty id": setting("ce_id", b""),
    "id without a value": setting("ce_id", None),
    "id not UTF-8": setting("ce_id", b"\xff\xfe"),
    "another instant": setting("ce_time", b"2027-06-01T10:00:00.5Z"),
    "time with an offset": setting("ce_time", b"2026-01-01T00:00:00.123456+02:00"),
    "basic ISO time": setting("ce_time", b"20260101T000000Z"),
    "time without zone": setting("ce_time", b"2026-01-01T00:00:00"),
    "impossible date": setting("ce_time", b"2026-02-30T00:00:00Z"),
    "month 13": setting("ce_time", b"2026-13-01T00:00:00Z"),
    "time not a time": setting("ce_time", b"yesterday"),
    "time not UTF-8": setting("ce_time", b"\xff"),
    "spec version 0.3": setting("ce_specversion", b"0.3"),
    "empty source": setting("ce_source", b""),
    "source not UTF-8": setting("ce_source", b"\xc3"),
    "empty type": setting("ce_type", b""),
    "another type": setting("ce_type", b"com.example.other.v0"),
    "empty subject": setting("ce_subject", b""),
    "subject without a value": setting("ce_subject", None),
    "quoted subject": setting("ce_subject", b'Other "quoted"'),
    "json with charset": setting("content-type", b"application/json; charset=utf-8"),
    "text content": setting("content-type", b"text/plain"),
    "no id": without("ce_id"),
    "no time": without("ce_time"),
    "no type": without("ce_type"),
    "no content-type": without("content-type"),
    "headers reversed": lambda r: replace(r, headers=list(reversed(r.headers))),
    "id repeated, the last wins": adding("ce_id", b"second-id"),
    "time repeated in capitals": adding("CE_TIME", b"2030-01-01T00:00:00Z"),
    "a trace header": adding("traceparent", b"00-abc-01"),
    "a header not UTF-8": adding("traceparent", b"\xff"),
    "extension with a dash": adding("ce_Bad-Name", b"x"),
    "extension named data": adding("ce_data", b"x"),
    "no value": lambda r: replace(r, value=None),
    "empty value": lambda r: replace(r, value=b""),
    "data not JSON": lambda r: replace(r, value=b"{x"),
    "data with text after it": lambda r: replace(r, value=b'{"a": 1} more'),
    "data a number": lambda r: replace(r, value=b"42"),
    "data an array": lambda r: replace(r, value=b"[1, 2]"),
    "no key": lambda r: replace(r, key=None),
}


def consumed(record: KafkaRecord) -> ConsumedRecord:
    """The record as the sink runtime reads it: a confluent_kafka.Message's view."""
    return ConsumedRecord(
        Message(
            topic="vcenter.events",
            partition=0,
            offset=7,
            key=record.key,
            value=record.value,
            headers=list(record.headers) or None,
            timestamp=(1, 1_700_000_000_000),
        )
    )


def verdict(check: Callable[[CloudEventView], object], record: KafkaRecord) -> tuple[Any, ...]:
    """What a check makes of a record: its reason for refusing it, or the attributes in
    order, the time and the data it read."""
    view = CloudEventView(record)
    try:
        check(view)
    except InvalidRecord as exc:
        return ("refused", str(exc))
    return ("accepted", list(view.attributes.items()), view.time(), view.data())


def learned(base: KafkaRecord) -> LayoutCheck:
    checker = LayoutCheck()
    checker.check(CloudEventView(consumed(base)))
    assert checker.slow_checks == 1
    return checker


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.stem)
@pytest.mark.parametrize("change", CHANGES.values(), ids=list(CHANGES))
def test_a_known_layout_one_change_away_gets_the_slow_checks_verdict(
    path: Path, change: Change
) -> None:
    base = golden_record(path)
    variant = consumed(change(base))
    checker = learned(base)
    expected = verdict(CloudEventView.check, variant)
    assert verdict(checker.check, variant) == expected
    # the same again, now that an accepted variant may have taught its own layout
    assert verdict(checker.check, variant) == expected
    if expected[0] == "accepted":  # read as the SDK reads the same record
        view = CloudEventView(variant)
        checker.check(view)
        message = http_binding.HTTPMessage(*view.http_binary())
        assert fields(http_binding.from_binary(message, SDK_FORMAT)) == fields(decode(variant))
    else:
        with pytest.raises(InvalidRecord):
            decode(variant)


def test_records_differing_only_in_id_and_time_take_the_fast_way() -> None:
    base = golden_record(GOLDEN[0])
    checker = learned(base)
    for second in range(50):
        record = setting("ce_id", f"id-{second}".encode())(base)
        record = setting("ce_time", f"2026-01-01T00:00:{second:02d}Z".encode())(record)
        view = CloudEventView(consumed(record))
        checker.check(view)
        assert (view.id, view.get("time")) == (f"id-{second}", f"2026-01-01T00:00:{second:02d}Z")
    assert checker.slow_checks == 1


def test_the_data_and_time_are_parsed_once_by_check_and_their_readers() -> None:
    view = CloudEventView(consumed(golden_record(GOLDEN[0])))
    learned(golden_record(GOLDEN[0])).check(view)
    assert view.data() is view.data()
    assert view.time() is view.time()
    assert view.time() == decode(view.record).get_time()


def test_layouts_are_bounded_and_repeated_names_are_not_learned() -> None:
    layouts: HeaderLayouts[int] = HeaderLayouts(limit=3)
    base = golden_record(GOLDEN[0]).headers
    for number in range(4):
        assert layouts.learn(setting("ce_type", b"t%d" % number)(KafkaRecord(b"", None, base))
                             .headers, number)  # fmt: skip
    assert len(layouts) == 1  # forgotten when full, then the fourth kept
    found = layouts.find(setting("ce_type", b"t3")(KafkaRecord(b"", None, base)).headers)
    assert found is not None and found[0] == 3
    assert dict(base)["ce_id"] == found[1] and dict(base)["ce_time"] == found[2]
    assert not layouts.learn([*base, ("CE_SUBJECT", b"x")], 9)
    assert not layouts.learn([(k, v) for k, v in base if k != "ce_time"], 9)
    assert len(layouts) == 1
