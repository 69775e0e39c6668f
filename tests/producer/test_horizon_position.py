"""The Horizon position: time plus the ids written at that time, and its checkpoint."""

from __future__ import annotations

import pytest

from producer.horizon_position import HorizonPosition, decode_checkpoint, encode_checkpoint
from schemas.avro import AvroError


def event(event_id: int, time_ms: int) -> dict[str, int]:
    return {"id": event_id, "time": time_ms}


def test_events_sharing_the_checkpoint_millisecond_are_new_unless_written() -> None:
    position = HorizonPosition(100, frozenset({1, 2}))
    assert not position.is_new(event(1, 100))
    assert position.is_new(event(3, 100))  # arrived later in the same millisecond
    assert position.is_new(event(4, 101))
    assert not position.is_new(event(5, 99))


def test_position_after_events_keeps_only_the_ids_of_the_newest_millisecond() -> None:
    position = HorizonPosition(100, frozenset({1})).after(
        [event(3, 100), event(4, 105), event(5, 105)]
    )
    assert position == HorizonPosition(105, frozenset({4, 5}))
    assert HorizonPosition(100, frozenset({1})).after([]) == HorizonPosition(100, frozenset({1}))


def test_checkpoint_round_trips_through_avro() -> None:
    position = HorizonPosition(1764700000123, frozenset({7, 9}))
    record = encode_checkpoint("https://cs01.example.com", position)
    assert record.key == b"horizon/https://cs01.example.com"
    assert decode_checkpoint(record.value or b"") == position


def test_unreadable_checkpoint_is_an_error() -> None:
    with pytest.raises(AvroError):
        decode_checkpoint(b"garbage")
