"""When a worker that has caught up reads again: as late as the latency budget allows.

Every read starts a transaction's worth of waiting: an event the read at t_k returns
was not there at the previous read t_(k-1), so from its creation to its commit it
waited at most `t_(k-1) → commit k`, its *exposure*: the interval between the two reads
plus what came after the planned read (the wake-up's lateness, reading, encoding, the
commit). The longer the interval, the more events share one transaction — and one
Kafka transaction is most of what a quiet vCenter costs — but the exposure must stay
within `producer.commitInterval`.

So the pacer plans the next read at `budget - overhead` after the last one, where
overhead is the largest exposure-less-interval of the recent cycles: on a quiet machine
the interval uses nearly the whole budget, on a loaded one (slow commits, late
wake-ups) it shrinks, instead of the latency growing with the load.
"""

from __future__ import annotations

from collections import deque

# cycles whose overhead the pacer remembers: at ~6 cycles a second a slow spell is
# forgotten after ~8 s, and the largest of 50 stands for their 98th percentile
RECENT_CYCLES = 50


class Pacer:
    def __init__(self, budget_s: float) -> None:
        self.budget_s = budget_s
        self._overheads: deque[float] = deque(maxlen=RECENT_CYCLES)
        self._previous: float | None = None  # when the read before the last one began
        self._last: float | None = None  # when the last read began
        self._plan: float | None = None  # when the next read is planned to begin
        self._last_planned: float | None = None  # when the last read was planned to begin

    def interval_s(self) -> float:
        """How long after the last read the next one is due."""
        return max(0.0, self.budget_s - max(self._overheads, default=0.0))

    def next_read_at(self) -> float:
        """The monotonic time the next read is due (now, when nothing was read yet)."""
        if self._last is None:
            return 0.0
        return self._last + self.interval_s()

    def plan(self, now: float) -> float:
        """Plan the next read: the monotonic time it is due (`now` if that has passed)."""
        self._plan = max(now, self.next_read_at())
        return self._plan

    def read_began(self, at: float) -> None:
        """A read begins (what it begins later than planned is lateness)."""
        self._previous, self._last = self._last, at
        self._last_planned, self._plan = self._plan, None

    def committed(self, at: float) -> None:
        """The events of the last read are committed: learn this cycle's overhead."""
        if self._previous is None or self._last is None:
            return
        began = self._last_planned if self._last_planned is not None else self._last
        exposure = at - self._previous
        self._overheads.append(max(0.0, exposure - (began - self._previous)))
