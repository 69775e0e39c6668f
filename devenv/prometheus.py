"""A real Prometheus server (Debian's `prometheus` package) scraping given targets.

The end-to-end tests point it at every vcstream process and evaluate the Grafana
dashboard's expressions through its HTTP API, so a panel that queries a metric the
code does not export fails a test instead of showing "No data" to a user.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from devenv.process import ChildProcess, free_port, wait_until

_TARGET = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")
_JOB = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


class PromQLError(ValueError):
    """Prometheus refused a query; the message is Prometheus' own explanation."""


def prometheus_binary() -> str:
    found = os.environ.get("PROMETHEUS") or shutil.which("prometheus")
    if not found:
        raise FileNotFoundError(
            "no `prometheus` on PATH: run deploy/local/install.sh (Debian package prometheus)"
        )
    return found


def scrape_config(
    targets: dict[str, list[str]], interval: float, rule_files: list[Path] | None = None
) -> dict[str, Any]:
    """prometheus.yml for `job name → [host:port, ...]`, evaluating `rule_files` (alerting
    rules) as often as it scrapes; rejects malformed names at once."""
    jobs = []
    for job, addresses in targets.items():
        if not _JOB.match(job):
            raise ValueError(f"job name {job!r}: use letters, digits, '_' and '-'")
        for address in addresses:
            if not _TARGET.match(address):
                raise ValueError(f"target {address!r} of job {job!r}: expected host:port")
        jobs.append({"job_name": job, "static_configs": [{"targets": list(addresses)}]})
    seconds = f"{interval:g}s"
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": seconds,
            "scrape_timeout": seconds,
            "evaluation_interval": seconds,
        },
        "scrape_configs": jobs,
    }
    if rule_files:
        config["rule_files"] = [str(path.resolve()) for path in rule_files]
    return config


class LocalPrometheus:
    """`LocalPrometheus(workdir, {"producer": ["127.0.0.1:8080"]}).start()`, then `.query()`."""

    def __init__(
        self,
        workdir: Path,
        targets: dict[str, list[str]],
        port: int | None = None,
        scrape_interval: float = 1.0,
        rule_files: list[Path] | None = None,
    ) -> None:
        self.workdir = workdir
        self.config = scrape_config(targets, scrape_interval, rule_files)
        self.port = port or free_port()
        self.child = ChildProcess("prometheus", workdir)
        self.config_path = workdir / "prometheus.yml"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> LocalPrometheus:
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        self.child.spawn(
            [
                prometheus_binary(),
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1d",
                "--log.level=warn",
            ]
        )
        self.child.wait_ready(self._ready, timeout, "Prometheus")
        return self

    def _ready(self) -> bool:
        # the server must be ours: another Prometheus on the port would answer just as well
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                if response.status != 200:
                    return False
            flags = self._api("status/flags")
        except (OSError, RuntimeError, PromQLError):
            return False
        return bool(flags.get("config.file") == str(self.config_path))

    def _api(self, path: str, params: dict[str, str] | None = None) -> Any:
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:
            # 400/422 carry a JSON body that says what is wrong with the query
            try:
                body = json.load(exc)
            except ValueError:
                raise RuntimeError(f"Prometheus {path}: HTTP {exc.code}") from None
        if body.get("status") != "success":
            raise PromQLError(f"{body.get('errorType', 'error')}: {body.get('error', body)}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector (or scalar, as one sample) `expr` evaluates to now."""
        data = self._api("query", {"query": expr})
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts: each with `labels`, `annotations` and `state` (pending, firing)."""
        alerts: list[dict[str, Any]] = self._api("alerts")["alerts"]
        return alerts

    def rules(self) -> list[dict[str, Any]]:
        """Every loaded rule with its `health` (ok, err, unknown before its first
        evaluation) and `lastError`."""
        groups = self._api("rules")["groups"]
        return [rule for group in groups for rule in group["rules"]]

    def targets(self) -> dict[str, str]:
        """Scrape URL → health (`up`, `down` or `unknown` before the first scrape)."""
        data = self._api("targets", {"state": "active"})
        return {target["scrapeUrl"]: target["health"] for target in data["activeTargets"]}

    def wait_scraped(self, timeout: float = 30) -> dict[str, str]:
        """Wait until every target has been scraped at least once; returns their health."""
        expected = sum(
            len(job["static_configs"][0]["targets"]) for job in self.config["scrape_configs"]
        )

        def scraped() -> bool:
            # right after start the target list is still empty: all([]) would say yes
            health = self.targets()
            return len(health) == expected and "unknown" not in health.values()

        wait_until(
            scraped,
            timeout,
            "the first scrape of every target",
            self.child.alive,
        )
        return self.targets()

    def wait_for(self, expr: str, timeout: float = 30) -> list[dict[str, Any]]:
        """Poll `expr` until it returns data (rate() needs two scrapes, for instance)."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if result or time.monotonic() > deadline:
                return result
            time.sleep(0.5)

    def stop(self) -> None:
        self.child.stop(timeout=20)
