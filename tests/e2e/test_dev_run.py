"""`./dev run 2>&1 | tee log`, then Ctrl-C: tee goes first, so every line written after it
meets a broken pipe, and still no process is left behind."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devenv.process import REPO, free_port, wait_until
from devenv.up import busy_ports
from tests.core.test_dev_run_guards import gone

pytestmark = [pytest.mark.integration, pytest.mark.slow]

READY = "all roles healthy"
# runs argv[1:] with SIGINT ignored (an ignored signal stays ignored across exec)
IGNORING_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def kafka_ports() -> int:
    """A free port whose +10 (Kafka's controller under ./dev run) is free too."""
    while True:
        port = free_port()
        if port + 10 < 65536 and not busy_ports({"kafka": port, "controller": port + 10}):
            return port


def test_dev_run_into_a_pipe_that_closes_then_ctrl_c_leaves_no_process(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    run = subprocess.Popen(
        [
            # with SIGINT ignored, as a script's background job starts it (fresh CI once
            # ran the suite so, and `./dev run` then never saw the Ctrl-C)
            *(sys.executable, "-c", IGNORING_SIGINT),
            *(sys.executable, "-m", "devenv.up", "--workdir", str(tmp_path), "--no-activity"),
            *("--kafka-port", str(kafka_ports()), "--vcsim-port", str(free_port())),
            *("--knative-port", str(free_port()), "--slack-port", str(free_port())),
            *("--horizon-port", str(free_port())),
        ],
        cwd=REPO,
        stdout=write_end,
        stderr=write_end,  # 2>&1
        stdin=subprocess.DEVNULL,
    )
    os.close(write_end)
    output = b""
    deadline = time.monotonic() + 240
    try:
        while READY.encode() not in output:
            assert run.poll() is None, output.decode(errors="replace")
            assert time.monotonic() < deadline, output.decode(errors="replace")
            ready, _, _ = select.select([read_end], [], [], 1)
            if ready:
                output += os.read(read_end, 65536)
        services = children_of(run.pid)
        # Kafka, vcsim and the five roles
        assert len(services) >= 7, services
    finally:
        os.close(read_end)  # tee is gone: the next write fails with EPIPE
    run.send_signal(signal.SIGINT)
    try:
        # 0: the clean-up ran to its end (a broken pipe used to raise out of it: exit 1)
        assert run.wait(timeout=180) == 0
    finally:
        if run.poll() is None:  # SIGTERM runs the same clean-up: no services left behind
            run.terminate()
            run.wait(120)
    # and whatever happens to the clean-up, the kernel stops what outlives ./dev run
    wait_until(lambda: all(gone(pid) for pid in services), 30, "every service's exit")
