"""Kafka's default placement of keyed records (murmur2), with the answer per key kept.

aiokafka computes murmur2 in pure Python for every record sent, and the worker sends two
or three records per event, all keyed by vCenter + entity: the profile put it near a
tenth of the worker's time. Keys repeat (one per VM, host, ...), so the partition of a
key is remembered per partition count; placement is exactly the default partitioner's,
which keeps each entity's events in order in one partition, as the producer keyed them.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka.partitioner import DefaultPartitioner

# keys remembered at most (one per vSphere entity): past it, the memory starts over
MEMO_LIMIT = 65536


class KeyPartitioner:
    def __init__(self) -> None:
        self._default = DefaultPartitioner()
        self._memo: dict[tuple[bytes, tuple[int, ...]], int] = {}

    def __call__(
        self, key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]
    ) -> int:
        if key is None:  # a random available partition: nothing to remember
            return int(self._default(key, all_partitions, available))
        memo_key = (key, tuple(all_partitions))
        partition = self._memo.get(memo_key)
        if partition is None:
            partition = int(self._default(key, all_partitions, available))
            if len(self._memo) >= MEMO_LIMIT:
                self._memo.clear()
            self._memo[memo_key] = partition
        return partition
