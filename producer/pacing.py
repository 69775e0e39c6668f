"""When a worker that has caught up reads again: as late as the latency budget allows.

Every read starts a transaction's worth of waiting: an event the read at t_k returns
was not there at the previous read t_(k-1), so from its creation to its commit it
waited at most `t_(k-1) → commit k`, its *exposure*: the interval between the two reads
plus what came after the planned read (the wake-up's lateness, reading, encoding, the
commit). The longer the interval, the more events share one transaction — and one
Kafka transaction is most of what a quiet vCenter costs — but the exposure must stay
within `producer.commitInterval`.

So the pacer plans the next read at `budget - overhead` after the last one, where
overhead is what nine in ten of the recent cycles stayed within (exposure less
interval): on a quiet machine the interval uses nearly the whole budget, on a loaded one
(slow commits, late wake-ups) it shrinks, instead of the latency growing with the load.

Nine in ten, not the largest: a lone slow commit (a broker pause, a busy neighbour) is
one cycle in tens, and the largest of them shortened every interval for as long as it
was remembered, which on a shared machine was nearly always (at 50 events/s: 140 ms
intervals where the typical cycle needed 160 ms less its overhead, and a transaction a
cycle is most of the cost). The cycle that overruns delays only the events that arrived
in its first few milliseconds, by what it overran; a slow spell that lasts (a tenth of
the window or more) shortens the interval as before.
"""

from __future__ import annotations

import math
from collections import deque

# cycles whose overhead the pacer remembers: at ~6 cycles a second a slow spell is
# forgotten after ~8 s
RECENT_CYCLES = 50
# the share of the recent cycles whose overhead the interval leaves room for
PLANNED_SHARE = 0.9


class Pacer:
    def __init__(self, budget_s: float) -> None:
        self.budget_s = budget_s
        self._overheads: deque[float] = deque(maxlen=RECENT_CYCLES)
        self._previous: float | None = None  # when the read before the last one began
        self._last: float | None = None  # when the last read began
        self._plan: float | None = None  # when the next read is planned to begin
        self._last_planned: float | None = None  # when the last read was planned to begin
        self._interval_s = budget_s  # budget less the planned overhead, kept per commit

    def interval_s(self) -> float:
        """How long after the last read the next one is due."""
        return self._interval_s

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
        ordered = sorted(self._overheads)
        planned = ordered[math.ceil(PLANNED_SHARE * len(ordered)) - 1]
        self._interval_s = max(0.0, self.budget_s - planned)
