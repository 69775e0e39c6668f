"""A service process's stop says how it ended: what the soak benchmark reports for a
worker's SIGTERM (no services)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from devenv.process import ChildProcess, wait_until

IGNORES_SIGTERM = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


def test_stop_returns_the_exit_code_of_a_process_that_obeys_sigterm(tmp_path: Path) -> None:
    child = ChildProcess("obeys", tmp_path)
    child.spawn([sys.executable, "-c", "import time; time.sleep(60)"])
    assert child.stop(timeout=20) == -signal.SIGTERM
    assert child.stop() == -signal.SIGTERM  # stopped already: the same answer


def test_stop_kills_a_process_that_ignores_sigterm_and_says_so(tmp_path: Path) -> None:
    child = ChildProcess("ignores", tmp_path)
    child.spawn([sys.executable, "-c", IGNORES_SIGTERM])
    # SIGTERM before the handler is in place would end it at once
    wait_until(lambda: "ready" in child.log_path.read_text(), 20, "child", child.alive)
    assert child.stop(timeout=0.5) == -signal.SIGKILL
