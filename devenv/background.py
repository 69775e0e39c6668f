"""A daemon thread that `./dev run` starts to make activity, and stops on the way out."""

from __future__ import annotations

import threading
from typing import Self


class BackgroundActivity:
    """Runs `_run` in a daemon thread; `_run` waits on `self._stop` between its steps so
    that `stop()` ends it within one period."""

    def __init__(self, name: str, period: float) -> None:
        self.period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        raise NotImplementedError
