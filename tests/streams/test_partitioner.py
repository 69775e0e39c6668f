"""Output placement: Kafka's default (murmur2) for every key, remembered or not."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner

from streams import partitioner
from streams.partitioner import KeyPartitioner


def test_keys_land_where_the_default_partitioner_puts_them(monkeypatch):
    monkeypatch.setattr(partitioner, "MEMO_LIMIT", 50)  # past the limit, too
    default, remembered = DefaultPartitioner(), KeyPartitioner()
    keys = [f"b0b0/VirtualMachine:vm-{n}".encode() for n in range(120)]
    for partitions in ([0, 1, 2, 3, 4, 5], [0, 1, 2], list(range(12))):
        for _ in range(2):  # computed, then remembered
            for key in keys:
                expected = default(key, partitions, partitions)
                assert remembered(key, partitions, partitions) == expected
    assert len(remembered._memo) <= 50
    # the same key with more partitions is placed anew, not where it was remembered
    assert {remembered(b"vm-7", [0, 1], [0, 1]), remembered(b"vm-7", list(range(64)), [])} == {
        default(b"vm-7", [0, 1], [0, 1]),
        default(b"vm-7", list(range(64)), []),
    }


def test_record_without_key_goes_to_an_available_partition():
    remembered = KeyPartitioner()
    assert {remembered(None, [0, 1, 2, 3], [2]) for _ in range(20)} == {2}
    assert not remembered._memo
