"""`/metrics` (Prometheus text format), `/livez`, and `/readyz` alias `/healthz`.

Every long-running role starts one of these. Health checks are plain callables
registered by name; each returns None when healthy or a short reason when not.

Two questions, two endpoints, as in Kubernetes' own API server:

- `/livez`: does the process itself still work (its loop turns)? Only checks added
  with `live=True` count. A failure here is worth a restart; Kubernetes' liveness and
  startup probes and the compose health check ask this.
- `/readyz` and `/healthz`: is the role doing its job? Every check counts: Kafka, the
  vCenters, a sink's target, the dead-letter topic. A target that is down answers 503
  with `"status": "degraded"` and the reason, and shows in metrics and alerts, but a
  restart would not bring it back (it would only restart the back-off), so it never
  fails `/livez`.

`vcstream_health_check_up{check}` exports every check, so Prometheus can alert on a
role that is not ready (`deploy/prometheus/alerts.yml`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from vcstream.settings.observability import MetricsSettings

log = logging.getLogger(__name__)

HealthCheck = Callable[[], str | None]


class Health:
    """Named checks; ready when every check returns None, live when every live one does."""

    def __init__(self) -> None:
        self._checks: dict[str, HealthCheck] = {}
        self._live: set[str] = set()
        self._lock = threading.Lock()

    def add(self, name: str, check: HealthCheck, live: bool = False) -> None:
        """`live`: the check is about the process itself, so it also decides `/livez`."""
        with self._lock:
            self._checks[name] = check
            if live:
                self._live.add(name)

    def remove(self, name: str) -> None:
        with self._lock:
            self._checks.pop(name, None)
            self._live.discard(name)

    def report(self, live_only: bool = False) -> tuple[bool, dict[str, str]]:
        with self._lock:
            checks = {
                name: check
                for name, check in self._checks.items()
                if not live_only or name in self._live
            }
        status: dict[str, str] = {}
        for name, check in checks.items():
            try:
                problem = check()
            except Exception as exc:  # a broken check is itself a problem to report
                problem = f"check failed: {type(exc).__name__}"
            status[name] = problem or "ok"
        return all(value == "ok" for value in status.values()), status

    def body(self, live_only: bool = False) -> tuple[int, bytes]:
        """The HTTP status and JSON body of `/livez` (live_only) or `/readyz`."""
        healthy, status = self.report(live_only)
        if healthy:
            word = "ok"
        elif live_only or not self.report(live_only=True)[0]:
            word = "down"
        else:
            word = "degraded"  # alive, but something it depends on is not
        return (200 if healthy else 503), json.dumps({"status": word, "checks": status}).encode()


class Flag:
    """A health check a component flips as it loses and regains a connection."""

    def __init__(self, problem: str | None = "starting") -> None:
        self.problem = problem

    def ok(self) -> None:
        self.problem = None

    def down(self, reason: str) -> None:
        self.problem = reason

    def __call__(self) -> str | None:
        return self.problem


class Heartbeat:
    """A liveness check: the process's main loop calls `beat()` on every turn; a loop that
    has not turned for `stale_after` seconds is stuck (a deadlock, a call that never
    returns), which only a restart cures. Idle waiting still turns the loop."""

    def __init__(self, stale_after: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stale_after = stale_after
        self._clock = clock
        self._last = clock()

    def beat(self) -> None:
        self._last = self._clock()

    def __call__(self) -> str | None:
        idle = self._clock() - self._last
        if idle > self.stale_after:
            return f"main loop stuck for {idle:.0f}s"
        return None


class HealthCollector(Collector):
    """Every check as `vcstream_health_check_up{check}` (1 ok, 0 not), read at scrape."""

    def __init__(self, health: Health) -> None:
        self.health = health

    def collect(self) -> Iterator[GaugeMetricFamily]:
        _, status = self.health.report()
        family = GaugeMetricFamily(
            "vcstream_health_check_up",
            "1 when the named health check passes (what /readyz reports), 0 when not.",
            labels=["check"],
        )
        for name, value in sorted(status.items()):
            family.add_metric([name], 1.0 if value == "ok" else 0.0)
        yield family


class ObservabilityServer:
    def __init__(
        self,
        settings: MetricsSettings,
        health: Health,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self.health = health
        self._registry = registry
        self._collector: HealthCollector | None = HealthCollector(health)
        try:
            registry.register(self._collector)
        except ValueError:  # another server of this process exports its checks already
            self._collector = None
        handler = _handler_for(health, registry)
        self._server = ThreadingHTTPServer((settings.host, settings.port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="observability", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> ObservabilityServer:
        self._thread.start()
        log.info("serving /metrics, /livez, /readyz and /healthz on port %d", self.port)
        return self

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() would wait for a loop that never ran
            self._server.shutdown()
        self._server.server_close()
        if self._collector is not None:
            self._registry.unregister(self._collector)
            self._collector = None


def _handler_for(health: Health, registry: CollectorRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry))
            elif path in ("/healthz", "/readyz", "/livez"):
                code, body = health.body(live_only=path == "/livez")
                self._send(code, "application/json", body)
            else:
                self._send(404, "text/plain", b"not found\n")

        def _send(self, code: int, content_type: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # scrapes every few seconds would drown the log

    return Handler
