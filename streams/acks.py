"""Acks in offset order, whatever order events finish in.

An event finishes when Kafka has acknowledged what was made from it; alarm events that
wait for their definition finish later than the events after them. Faust commits up to
the first gap in acked offsets, but its gap check misses an unacked offset right at the
committed position (faust-streaming 0.15: `min(acked) - committed > 1`, and no check at
all before the first commit), which would commit past a waiting event and lose it on a
crash. So acks reach Faust strictly in order per partition.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any


class Pending:
    __slots__ = ("done", "source")

    def __init__(self, source: Any) -> None:
        self.source = source
        self.done = False


class OrderedAcks:
    def __init__(self) -> None:
        self._queues: dict[Any, deque[Pending]] = {}

    def track(self, source: Any) -> Pending:
        """Called as events are read, in offset order."""
        entry = Pending(source)
        self._queues.setdefault(source.message.tp, deque()).append(entry)
        return entry

    def finish(self, entry: Pending) -> None:
        entry.done = True
        queue = self._queues.get(entry.source.message.tp)
        while queue and queue[0].done:
            queue.popleft().source.ack()

    def forget(self, partitions: Iterable[Any]) -> None:
        """Partitions taken away: their new owner reads the unacked events again."""
        for tp in partitions:
            self._queues.pop(tp, None)

    def in_flight(self) -> int:
        return sum(len(queue) for queue in self._queues.values())
