"""Events whose outputs are on their way to Kafka: finished once Kafka has them all.

An input event may be acked only after Kafka acknowledged every record made from it
(outputs or dead letter). Sends are tracked in the order they were made and checked by
`settle()`, which the app calls after each event and on its timer, rather than with a
callback on each record's future: a done-callback costs an event-loop turn per record
sent, a visible share of the worker's time at two or three records per event. Acks
wait at most until the next check, well within the commit interval.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from streams.acks import Pending


class Deliveries:
    def __init__(
        self,
        finished: Callable[[Pending, float], None],
        failed: Callable[[BaseException], None],
    ) -> None:
        self._finished = finished  # (source, seconds since it was read)
        self._failed = failed  # called once, with the first error
        self._sent: deque[tuple[Pending, Sequence[asyncio.Future[Any]], float]] = deque()
        self._failing = False

    def add(self, source: Pending, futures: Sequence[asyncio.Future[Any]], started: float) -> None:
        if not futures and not self._sent:
            # nothing to wait for (and nothing before it)
            self._finished(source, time.monotonic() - started)
            return
        self._sent.append((source, futures, started))

    def settle(self) -> None:
        """Finish every event, oldest first, whose records Kafka has all acknowledged."""
        sent = self._sent
        now = 0.0  # read once per settle, when the first event finishes
        while sent:
            source, futures, started = sent[0]
            for future in futures:
                if not future.done():
                    return  # later sends mostly complete after this one: check again later
            sent.popleft()
            error = next(filter(None, map(_error_of, futures)), None)
            if error is None:
                now = now or time.monotonic()
                self._finished(source, now - started)
            elif not self._failing:
                # the event stays unacked: the worker stops before committing past it
                self._failing = True
                self._failed(error)

    def __len__(self) -> int:
        return len(self._sent)


def _error_of(future: asyncio.Future[Any]) -> BaseException | None:
    return asyncio.CancelledError() if future.cancelled() else future.exception()
