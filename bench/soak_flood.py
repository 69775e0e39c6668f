"""The event flood held at a rate for minutes, from a thread, stoppable at any time."""

from __future__ import annotations

import threading
import time

from devenv.event_flood import EventFlood

# EventFlood.post blocks until its events are posted, so the flood is stoppable once per
# chunk; each chunk starts ~50 ms late, which costs ~1% of the rate at 5 s
CHUNK_SECONDS = 5.0


class SteadyFlood:
    def __init__(self, flood: EventFlood, rate: float, seconds: float) -> None:
        self.flood = flood
        self.rate = rate
        self.seconds = seconds
        self.posted = 0
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-flood", daemon=True)

    def start(self) -> SteadyFlood:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask for the end and wait for the chunk being posted (bounded: the flood's
        close terminates posting processes that are still at it)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(CHUNK_SECONDS * 3)

    def _run(self) -> None:
        began = time.monotonic()
        try:
            while not self._stop.is_set():
                left = self.seconds - (time.monotonic() - began)
                if left <= 0:
                    return
                events = max(1, round(self.rate * min(CHUNK_SECONDS, left)))
                self.flood.post(events, self.rate)
                self.posted += events
        except Exception as exc:  # reported by the sampler, which ends the load
            self.error = f"{type(exc).__name__}: {exc}"
