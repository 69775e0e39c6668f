"""Run a command as a child and measure it: wall time, CPU seconds (its own and its
reaped children's, as wait4 reports them) and the peak RSS of every process in its
tree, each read from its own VmHWM while it runs.

`ru_maxrss` alone would not do: it is one number for the tree's largest process, and
it carries the forked parent's high-water mark across exec.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO


@dataclass
class Measured:
    returncode: int
    wall_seconds: float
    cpu_seconds: float
    # pid -> peak resident set in MB, for the command and every descendant seen
    peak_rss_mb: dict[int, float] = field(default_factory=dict)
    load_1m: float = 0.0  # the 1-minute load average when the command ended

    @property
    def max_rss_mb(self) -> float:
        return max(self.peak_rss_mb.values(), default=0.0)


def _status_kb(pid: int, field_name: str) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith(field_name):
            return int(line.split()[1])
    return 0


def _descendants(pid: int) -> list[int]:
    found = []
    stack = [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        try:
            tasks = Path(f"/proc/{current}/task").iterdir()
            for task in tasks:
                children = (task / "children").read_text().split()
                stack.extend(int(child) for child in children)
        except OSError:
            continue
    return found


def run_measured(
    command: list[str],
    stdout: IO[bytes] | int | None = subprocess.DEVNULL,
    cwd: Path | None = None,
    pythonpath: Path | None = None,
) -> Measured:
    """The command's figures. The wall time ends when wait4 returns: the peaks are read
    by a thread of their own, so no sampling step adds to it (a loop that polled the
    exit every 0.1 s added 0-0.1 s to every run, a tenth of kcat's).

    A Python child runs from byte code, as an installed package does (pip compiles every
    module): with PYTHONDONTWRITEBYTECODE set, as here, each run compiled the project's
    modules again, ~40-50 ms. Its stderr goes to a file, not a pipe: a pipe nobody reads
    until the exit would stop a child that writes more than the pipe holds."""
    env = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    peaks: dict[int, int] = {}
    exited = threading.Event()
    with tempfile.TemporaryFile() as stderr:
        began = time.perf_counter()
        child = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=env, cwd=cwd)

        def sample() -> None:
            while not exited.is_set():
                for pid in _descendants(child.pid):
                    peaks[pid] = max(peaks.get(pid, 0), _status_kb(pid, "VmHWM:"))
                exited.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - began
        exited.set()
        sampler.join()
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            stderr.seek(0)
            said = stderr.read().decode(errors="replace")
            raise RuntimeError(f"{command[:4]} exited {child.returncode}: {said[-2000:]}")
    return Measured(
        returncode=child.returncode,
        wall_seconds=wall,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        peak_rss_mb={pid: round(kb / 1024, 1) for pid, kb in peaks.items() if kb},
        load_1m=os.getloadavg()[0],
    )
