"""What the local services have in common: paths, free ports, a child process."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

# devenv/ lives beside the package in a checkout (it is not shipped); the checkout's root
# is where `deploy/local/install.sh` puts Kafka's jars and vcsim, and where tests run from
REPO = Path(__file__).resolve().parents[1]


def cache_dir() -> Path:
    """Where install.sh put the binaries and the runners keep their data.

    `VCSTREAM_CACHE` wins (as in install.sh); otherwise the checkout's `.cache`, found from
    this file only when it really is in a checkout, else `.cache` under the current
    directory: a copy of devenv outside a checkout must not write next to its own files.
    """
    configured = os.environ.get("VCSTREAM_CACHE")
    if configured:
        return Path(configured)
    if (REPO / "pyproject.toml").is_file() and (REPO / "deploy" / "local").is_dir():
        return REPO / ".cache"
    return Path.cwd() / ".cache"


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _dies_with_parent() -> Callable[[], None] | None:
    """A preexec_fn that has the kernel send the child SIGTERM when its parent dies.

    Services run in their own session (Ctrl-C in a terminal reaches only the parent, which
    stops them in order), so nothing else would stop them when the parent is killed or
    dies before its clean-up. The kernel's signal follows the thread that spawned the
    child: spawn from a thread that outlives the service (the main thread does).
    """
    if not sys.platform.startswith("linux"):
        return None
    # looked up before the fork: the child only makes the two system calls
    prctl = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True).prctl
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl: no signal would come
            os._exit(1)

    return preexec


def _ephemeral_low(path: Path = Path("/proc/sys/net/ipv4/ip_local_port_range")) -> int:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


PICK_FROM = 10000


def free_port() -> int:
    """A port free now, below the kernel's ephemeral range where it can: a port bind(0)
    hands out is one every outgoing connection may take before the server that was
    given it binds (a gateway of the e2e pipeline once lost its port that way)."""
    low = _ephemeral_low()
    for _ in range(200 if low - PICK_FROM >= 1000 else 0):
        port = random.randrange(PICK_FROM, low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    ready: Callable[[], bool], timeout: float, what: str, alive: Callable[[], bool] | None = None
) -> None:
    """Poll `ready` until it is true; fail early if the process died."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while time.monotonic() < deadline:
        if ready():
            return
        if alive is not None and not alive():
            raise RuntimeError(f"{what} exited during start-up")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s")


class ChildProcess:
    """A service process whose output goes to a log file in its work dir."""

    def __init__(self, name: str, workdir: Path) -> None:
        self.name = name
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def spawn(
        self, argv: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,  # Ctrl-C in a terminal reaches us, not the service
            # safe with threads: it makes two system calls and takes no lock
            preexec_fn=_dies_with_parent(),  # noqa: PLW1509
        )
        log.close()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError(f"{self.name} is not running")
        return self.process.pid

    def stop(self, timeout: float = 20) -> int | None:
        """SIGTERM, SIGKILL after `timeout`; the exit code (-9 when it had to be killed)."""
        if not self.alive():
            return self.returncode
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        return self.returncode

    def kill(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.kill()
            self.process.wait()

    def rss_bytes(self) -> int:
        """Peak resident set size (VmHWM) of the process, from /proc."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        return 0

    def wait_ready(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """`wait_until` this process is ready; failing, the error ends with its log, which
        is all a CI run keeps of why a service died or hung at start-up."""
        try:
            wait_until(ready, timeout, what, self.alive)
        except (TimeoutError, RuntimeError) as exc:
            code = self.returncode
            status = "" if code is None else f" (exit code {code})"
            log = f"{self.log_path.name} ends:\n{self.tail()}"
            raise RuntimeError(f"{exc}{status}; {log}") from None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
