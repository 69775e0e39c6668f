"""A vcstream role as users run it (`python -m cli <role> --config FILE`) in a real
subprocess, its log in a file; and the polling wait every such test needs."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[1]
# what every role logs once its metrics server listens (it binds port 0 in tests)
METRICS_PORT_LOGGED = r"/healthz on port (\d+)"


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """The first truthy value of `predicate`, polled; fails naming `what` at `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def metric_total(text: str, name: str, labels: dict[str, str]) -> float:
    """The sum of the samples `name` in a /metrics page whose labels include `labels`
    (0 when there are none)."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


class RoleProcess:
    """One role's process; `stop_quietly` (fixtures call it) kills what is still running."""

    def __init__(self, role: list[str], config: Path, log: Path) -> None:
        self.command = [sys.executable, "-m", "cli", *role, "--config", str(config)]
        self.config = config
        self.log_path = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RoleProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def logged_port(self, pattern: str, timeout: float = 60) -> int:
        """The port the process last logged in `pattern`'s group (it binds port 0)."""

        def found() -> list[str]:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"{self.command[3]} exited: {self.log()}")
            return re.findall(pattern, self.log())

        return int(wait_for(found, timeout, pattern)[-1])

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.logged_port(METRICS_PORT_LOGGED)}"

    def get(self, path: str) -> tuple[int, str]:
        """Status and body of a GET on the metrics port (errors included)."""
        try:
            with urllib.request.urlopen(self.metrics_url + path, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples `name` on /metrics whose labels include `labels`."""
        return metric_total(self.get("/metrics")[1], name, labels)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def terminate(self, timeout: float = 60) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def wait(self, timeout: float = 60) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop_quietly(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
