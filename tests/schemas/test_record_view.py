"""`ConsumedRecord`: a record read from its confluent_kafka.Message on demand reads as
`KafkaRecord.from_confluent`'s copy of the same message, field for field."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, astuple
from typing import Any

import pytest
from confluent_kafka import Message

from schemas.record import ConsumedRecord, KafkaRecord

HEADERS = [("ce_id", b"1"), ("ce_type", b"t"), ("traceparent", b"00-ab-01")]
MESSAGES: dict[str, dict[str, Any]] = {
    "every field": {"headers": HEADERS, "timestamp": (1, 1_700_000_000_123)},
    "log append time": {"headers": HEADERS, "timestamp": (2, 5)},
    "no timestamp": {"headers": HEADERS, "timestamp": (0, -1)},
    "a header without a value": {"headers": [("ce_id", b"1"), ("empty", None)]},
    "no headers": {"headers": None},
    "no key, a tombstone": {"headers": HEADERS, "key": None, "value": None},
}


def message(**fields: Any) -> Message:
    given: dict[str, Any] = {"topic": "vcenter.events", "partition": 4, "offset": 17}
    given |= {"key": b"k", "value": b"{}"}
    given.update(fields)
    return Message(**given)


@pytest.mark.parametrize("fields", MESSAGES.values(), ids=list(MESSAGES))
def test_a_consumed_record_reads_as_from_confluent_copies(fields: dict[str, Any]) -> None:
    consumed = ConsumedRecord(message(**fields))
    copied = KafkaRecord.from_confluent(message(**fields))
    assert isinstance(consumed, KafkaRecord)
    assert astuple(consumed) == astuple(copied)
    assert repr(consumed).split("(", 1)[1] == repr(copied).split("(", 1)[1]
    for name, _ in copied.headers:
        assert consumed.header(name) == copied.header(name)


def test_headers_are_the_messages_own_list_unless_a_value_is_missing() -> None:
    whole = message(headers=HEADERS)
    assert ConsumedRecord(whole).headers is whole.headers()  # not copied
    gap = ConsumedRecord(message(headers=[("a", None), ("b", b"x")]))
    assert gap.headers == [("a", b""), ("b", b"x")]
    assert gap.headers is gap.headers  # converted once


def test_a_consumed_record_is_frozen_and_derives_plain_records() -> None:
    consumed = ConsumedRecord(message(headers=HEADERS))
    with pytest.raises(FrozenInstanceError):
        consumed.value = b"other"
    extended = consumed.with_headers([("x", b"y")])
    assert type(extended) is KafkaRecord
    assert extended.headers == [*HEADERS, ("x", b"y")]
    assert (extended.topic, extended.partition, extended.offset) == ("vcenter.events", 4, 17)
    assert consumed.headers == HEADERS  # unchanged
