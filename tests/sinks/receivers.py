"""Real HTTP receivers on 127.0.0.1 for the sink tests, with injectable faults.

`Receiver` runs an aiohttp server in its own thread and event loop, so it keeps
answering whatever the sink under test is doing. Every request is parsed with an
official SDK (the cloudevents SDK's HTTP binding, or plain JSON for Slack's webhook,
which is what slack_sdk sends); a request the SDK rejects is answered 400 and recorded
as `rejected`. A fault plan decides each answer: `Fault.status(503)`, a 429 with
`Retry-After`, a reset connection or a hang past the client's timeout.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import http as http_binding
from cloudevents.core.formats.json import JSONFormat

from devenv.process import free_port


@dataclass(frozen=True)
class Fault:
    kind: str  # "status", "reset", "hang"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (a slow receiver)

    @classmethod
    def http(cls, status: int, **headers: str) -> Fault:
        return cls("status", status, {k.replace("_", "-"): v for k, v in headers.items()})


OK = Fault.http(202)
RESET = Fault("reset")
HANG = Fault("hang")

# a plan sees the request number (1-based) and the parsed body, and picks the answer
FaultPlan = Callable[[int, Any], Fault]


def always(fault: Fault) -> FaultPlan:
    return lambda _n, _body: fault


def first(count: int, fault: Fault, then: Fault = OK) -> FaultPlan:
    return lambda n, _body: fault if n <= count else then


class Receiver:
    """Parses requests with `parse` and answers per `plan` (default: 202 to all)."""

    def __init__(self, parse: Callable[[dict[str, str], bytes], Any]) -> None:
        self.parse = parse
        self.port = free_port()
        self.plan: FaultPlan = always(OK)
        self.accepted: list[Any] = []
        self.accepted_at: list[float] = []
        self.rejected: list[str] = []
        self.requests = 0
        self.request_headers: list[dict[str, str]] = []
        self.bodies: list[bytes] = []  # as received, byte for byte
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="receiver")
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> Receiver:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("receiver did not start")
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        self._loop.run_until_complete(site.start())
        self._ready.set()
        self._loop.run_forever()
        # a handler still held by a fault plan ends with its loop here, not later in the
        # garbage collector with "Task was destroyed but it is pending!" on a closed log
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            parsed = self.parse(headers, body)
        except Exception as exc:
            with self._lock:
                self.rejected.append(f"{type(exc).__name__}: {exc}")
            return web.Response(status=400, text=f"invalid request: {exc}")
        with self._lock:
            self.requests += 1
            number = self.requests
            self.request_headers.append(headers)
            self.bodies.append(body)
        fault = self.plan(number, parsed)
        if fault.kind == "reset":
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=500)
        if fault.kind == "hang":
            await asyncio.sleep(30)  # well past any client timeout in the tests
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if 200 <= fault.status < 300:
            with self._lock:
                self.accepted.append(parsed)
                self.accepted_at.append(time.monotonic())
        return web.Response(status=fault.status, headers=fault.headers, text="")

    def wait_for(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.accepted) >= count:
                return
            time.sleep(0.05)
        raise AssertionError(f"receiver got {len(self.accepted)} of {count} in {timeout}s")


_FORMAT = JSONFormat()


def parse_cloudevent(headers: dict[str, str], body: bytes) -> BaseCloudEvent:
    """The cloudevents SDK decides: binary or structured mode, valid attributes."""
    event = http_binding.from_http(http_binding.HTTPMessage(headers, body), _FORMAT)
    for required in ("id", "source", "type", "specversion"):
        if not event.get_attributes().get(required):
            raise ValueError(f"missing CloudEvent attribute {required}")
    return event


def parse_slack(headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """What slack_sdk's webhook client posts: a JSON object with `text` and/or `blocks`."""
    if not headers.get("content-type", "").startswith("application/json"):
        raise ValueError(f"content-type {headers.get('content-type')!r}")
    payload = json.loads(body)
    if not isinstance(payload, dict) or not (payload.get("text") or payload.get("blocks")):
        raise ValueError("a Slack message needs text or blocks")
    return payload
