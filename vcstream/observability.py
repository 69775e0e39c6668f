"""`/metrics` (Prometheus text format) and `/healthz` (200 or 503 naming what is down).

Every long-running role starts one of these. Health checks are plain callables
registered by name; each returns None when healthy or a short reason when not.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from vcstream.settings.observability import MetricsSettings

log = logging.getLogger(__name__)

HealthCheck = Callable[[], str | None]


class Health:
    """Named checks; the process is healthy when every check returns None."""

    def __init__(self) -> None:
        self._checks: dict[str, HealthCheck] = {}
        self._lock = threading.Lock()

    def add(self, name: str, check: HealthCheck) -> None:
        with self._lock:
            self._checks[name] = check

    def remove(self, name: str) -> None:
        with self._lock:
            self._checks.pop(name, None)

    def report(self) -> tuple[bool, dict[str, str]]:
        with self._lock:
            checks = dict(self._checks)
        status: dict[str, str] = {}
        for name, check in checks.items():
            try:
                problem = check()
            except Exception as exc:  # a broken check is itself a problem to report
                problem = f"check failed: {type(exc).__name__}"
            status[name] = problem or "ok"
        return all(value == "ok" for value in status.values()), status


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


class ObservabilityServer:
    def __init__(
        self,
        settings: MetricsSettings,
        health: Health,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self.health = health
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
        log.info("serving /metrics and /healthz on port %d", self.port)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler_for(health: Health, registry: CollectorRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry))
            elif path in ("/healthz", "/readyz"):
                healthy, status = health.report()
                body = json.dumps({"status": "ok" if healthy else "down", "checks": status})
                self._send(200 if healthy else 503, "application/json", body.encode())
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
