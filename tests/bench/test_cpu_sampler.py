"""bench.cpu_sampler reads a process's CPU clock: every thread it has had, ended ones
too, as /proc counts them but finer."""

from __future__ import annotations

import subprocess
import sys

from bench.cpu_sampler import process_cpu_seconds
from bench.producer import cpu_seconds

# burns CPU in a thread that ends, then waits: only the process-wide count still has it
CHILD = """
import sys, threading
thread = threading.Thread(target=lambda: sum(i * i for i in range(3_000_000)))
thread.start()
thread.join()
print("done", flush=True)
sys.stdin.read()
"""


def test_the_clock_counts_an_ended_thread_as_proc_does() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"done\n"
        ticks, clock = cpu_seconds(child.pid), process_cpu_seconds(child.pid)
        assert ticks > 0.05  # the ended thread's work is there to be counted
        assert abs(clock - ticks) < 0.02  # the same count, /proc's in 10 ms ticks
    finally:
        child.kill()
        child.wait()
