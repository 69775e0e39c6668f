"""Acks in offset order, whatever order events finish in, and never across a rebalance.

An event finishes when Kafka has acknowledged what was made from it; alarm events that
wait for their definition finish later than the events after them. Faust commits up to
the first gap in acked offsets, but its gap check misses an unacked offset right at the
committed position (faust-streaming 0.15: `min(acked) - committed > 1`, and no check at
all while nothing is committed yet), which would commit past a waiting event and lose it
on a crash. So acks reach Faust strictly in order per partition.

Acks are also kept within one consumer generation. After a rebalance Faust seeks back to
the committed offset and the events are read again; an event of the old generation that
finishes afterwards (it was in flight, or still buffered in the stream) must not be
acked: its offset would land in the new generation's acked list out of order, and with
nothing committed yet Faust would commit past everything before it. Its repeat, read
again in the new generation, is the one that counts.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Any


class Pending:
    __slots__ = ("done", "generation", "source")

    def __init__(self, source: Any, generation: int | None) -> None:
        self.source = source
        self.generation = generation
        self.done = False


class OrderedAcks:
    def __init__(
        self,
        current_generation: Callable[[], int | None] = lambda: None,
        ack: Callable[[Any], object] = lambda source: source.ack(),
    ) -> None:
        self._current = current_generation
        self._ack = ack
        self._queues: dict[tuple[Any, int | None], deque[Pending]] = {}

    def is_stale(self, source: Any) -> bool:
        """Read in an earlier generation: the partition has been (re)assigned since."""
        generation = getattr(source.message, "generation_id", None)
        current = self._current()
        return generation is not None and current is not None and generation != current

    def track(self, source: Any) -> Pending:
        """Called as events are read, in offset order."""
        generation = getattr(source.message, "generation_id", None)
        entry = Pending(source, generation)
        key = (source.message.tp, generation)
        queue = self._queues.get(key)
        if queue is None:  # not setdefault: that would build a deque for every event
            queue = self._queues[key] = deque()
        queue.append(entry)
        return entry

    def finish(self, entry: Pending) -> None:
        entry.done = True
        key = (entry.source.message.tp, entry.generation)
        queue = self._queues.get(key)
        stale = self.is_stale(entry.source)
        while queue and queue[0].done:
            head = queue.popleft()
            if not stale:
                self._ack(head.source)
        if stale and queue is not None and not queue:
            self._queues.pop(key, None)

    def forget(self, partitions: Iterable[Any]) -> None:
        """Partitions taken away: their new owner reads the unacked events again."""
        revoked = set(partitions)
        for key in [key for key in self._queues if key[0] in revoked]:
            del self._queues[key]

    def in_flight(self) -> int:
        return sum(len(queue) for queue in self._queues.values())
