"""A service process's stop says how it ended: what the soak benchmark reports for a
worker's SIGTERM; one that dies or hangs at start-up says why, with its log (no services)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from devenv.process import PICK_FROM, ChildProcess, _ephemeral_low, free_port, wait_until

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


def test_a_process_that_dies_at_start_up_is_reported_with_its_exit_code_and_log(
    tmp_path: Path,
) -> None:
    child = ChildProcess("dies", tmp_path)
    child.spawn([sys.executable, "-c", "print('cannot bind port 1'); raise SystemExit(3)"])
    with pytest.raises(RuntimeError) as raised:
        child.wait_ready(lambda: False, 20, "dies /healthz")
    message = str(raised.value)
    assert message.startswith("dies /healthz exited during start-up (exit code 3)")
    assert message.endswith("dies.log ends:\ncannot bind port 1")


def test_a_process_never_ready_is_reported_with_its_log(tmp_path: Path) -> None:
    child = ChildProcess("hangs", tmp_path)
    waits = "import time; print('waiting for Kafka', flush=True); time.sleep(60)"
    child.spawn([sys.executable, "-c", waits])
    try:
        wait_until(lambda: child.log_path.read_text() != "", 20, "hangs", child.alive)
        with pytest.raises(RuntimeError) as raised:
            child.wait_ready(lambda: False, 0.5, "hangs /healthz")
        assert str(raised.value) == (
            "hangs /healthz not ready after 0s; hangs.log ends:\nwaiting for Kafka"
        )
    finally:
        child.stop()


CACHE_PROBE = (
    "import importlib.util, sys\n"
    "spec = importlib.util.spec_from_file_location('process', sys.argv[1])\n"
    "module = importlib.util.module_from_spec(spec)\n"
    "spec.loader.exec_module(module)\n"
    "print(module.cache_dir())\n"
)


def test_cache_dir_outside_a_checkout_is_under_the_working_directory(tmp_path: Path) -> None:
    # a copy of the runners away from any checkout must not write beside its own files
    import os
    import shutil
    import subprocess

    from devenv import process

    copy = tmp_path / "elsewhere" / "devenv" / "process.py"
    copy.parent.mkdir(parents=True)
    shutil.copy(process.__file__, copy)
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "VCSTREAM_CACHE"}

    def cache_dir(**extra: str) -> Path:
        result = subprocess.run(
            [sys.executable, "-c", CACHE_PROBE, str(copy)],
            cwd=work,
            env={**env, **extra},
            capture_output=True,
            text=True,
            check=True,
        )
        return Path(result.stdout.strip())

    assert cache_dir() == work / ".cache"
    assert cache_dir(VCSTREAM_CACHE=str(tmp_path / "c")) == tmp_path / "c"
    assert process.cache_dir() == process.REPO / ".cache" or "VCSTREAM_CACHE" in os.environ


def test_free_ports_come_from_below_the_ephemeral_range(tmp_path: Path) -> None:
    low = _ephemeral_low()
    assert all(PICK_FROM <= free_port() < low for _ in range(20))
    ranges = tmp_path / "ip_local_port_range"
    ranges.write_text("40000\t60999\n")
    assert _ephemeral_low(ranges) == 40000
    ranges.write_text("")
    assert _ephemeral_low(ranges) == 32768  # unreadable: Linux's default
    assert _ephemeral_low(tmp_path / "missing") == 32768
