"""A stand-in for a VMware Horizon Connection Server's REST API on 127.0.0.1.

It implements what vcstream's Horizon source uses, as documented: `POST /rest/login`
({domain, username, password} → {access_token, refresh_token}), `POST /rest/refresh`
({refresh_token} → {access_token}), `POST /rest/logout`, and
`GET /rest/external/v1/audit-events` with a bearer token, the `filter` query parameter
({"type": "Between", "name": "time", "fromValue": ms, "toValue": ms}, inclusive) and
`size`/`page` paging (page 1 first), newest event first.

Faults on demand, for the tests: access tokens that expire (`access_ttl`, or
`expire_tokens()` at once), a server answering 503 (`unavailable`), answers that take
longer than the client waits (`stall`), answers that are not the API's (`garbled`:
bytes are sent as they are), a restart that forgets every token but keeps
the events (`restart()`, as a Connection Server keeps them in its event database),
and history that no longer reaches back (`purge_before`).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from devenv.background import BackgroundActivity

AUDIT_EVENTS = "/rest/external/v1/audit-events"


class HorizonStandIn:
    def __init__(
        self,
        port: int = 0,
        domain: str = "example",
        username: str = "vcstream",
        password: str = "horizon-password",
        access_ttl: float = 600.0,
        refresh_ttl: float = 3600.0,
    ) -> None:
        self.domain = domain
        self.username = username
        self.password = password
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self.unavailable = False  # every request answers 503
        self.stall = 0.0  # seconds every request waits before its answer
        # what audit-events answers instead of the events (200): a broken server or proxy
        self.garbled: Any = None
        self.requests: Counter[str] = Counter()  # what was asked, and 401s given
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []
        self._next_id = 1000
        self._access: dict[str, float] = {}  # token → expiry (monotonic)
        self._refresh: dict[str, float] = {}
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- the server -------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> HorizonStandIn:
        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), _handler(self))
        self._server.daemon_threads = True
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def restart(self) -> None:
        """Down, then up on the same port: every token is forgotten, the events are kept."""
        self.stop()
        with self._lock:
            self._access.clear()
            self._refresh.clear()
        self.start()

    # ---- events and faults ------------------------------------------------------------

    def emit(
        self, count: int = 1, kind: str = "VLSI_USERLOGGEDIN_REST", severity: str = "AUDIT_SUCCESS"
    ) -> list[dict[str, Any]]:
        """`count` new audit events, timed now (several share a millisecond)."""
        made = []
        with self._lock:
            for _ in range(count):
                self._next_id += 1
                event = {
                    "id": self._next_id,
                    "time": int(time.time() * 1000),
                    "type": kind,
                    "severity": severity,
                    "module": "Broker",
                    "message": f"User EXAMPLE\\user{self._next_id % 7} has logged in",
                    "user_id": f"S-1-5-21-{self._next_id % 7}",
                    "machine_dns_name": None,
                    "machine_id": None,
                    "desktop_pool_name": None,
                    "application_pool_name": None,
                }
                self._events.append(event)
                made.append(event)
        return made

    def event_ids(self) -> list[int]:
        with self._lock:
            return [event["id"] for event in self._events]

    def expire_tokens(self) -> None:
        """Every access token expires now (refresh tokens stay valid)."""
        with self._lock:
            self._access.clear()

    def purge_before(self, time_ms: int) -> None:
        """Drop the events older than `time_ms`, as the event database's retention does."""
        with self._lock:
            self._events = [e for e in self._events if e["time"] >= time_ms]

    # ---- the API ----------------------------------------------------------------------

    def answer(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any]:
        if self.stall:
            time.sleep(self.stall)
        if self.unavailable:
            self.requests["503"] += 1
            return 503, {"error": "service unavailable"}
        parts = urlsplit(target)
        self.requests[f"{method} {parts.path}"] += 1
        if method == "POST":
            try:
                request = json.loads(body or b"{}")
            except ValueError:
                return 400, {"error": "invalid JSON"}
            if parts.path == "/rest/login":
                return self._login(request)
            if parts.path == "/rest/refresh":
                return self._renew(request)
            if parts.path == "/rest/logout":
                with self._lock:
                    self._refresh.pop(str(request.get("refresh_token")), None)
                return 200, {}
        if method == "GET" and parts.path == AUDIT_EVENTS:
            token = headers.get("authorization", "").removeprefix("Bearer ")
            with self._lock:
                valid = self._access.get(token, 0) > time.monotonic()
            if not valid:
                self.requests["401"] += 1
                return 401, {"error": "token expired"}
            if self.garbled is not None:
                return 200, self.garbled
            return self._audit_events(parse_qs(parts.query))
        return 404, {"error": "not found"}

    def _login(self, request: dict[str, Any]) -> tuple[int, Any]:
        given = (request.get("domain"), request.get("username"), request.get("password"))
        if given != (self.domain, self.username, self.password):
            return 401, {"error": "invalid credentials"}
        access, refresh = secrets.token_hex(16), secrets.token_hex(16)
        with self._lock:
            self._access[access] = time.monotonic() + self.access_ttl
            self._refresh[refresh] = time.monotonic() + self.refresh_ttl
        return 200, {"access_token": access, "refresh_token": refresh}

    def _renew(self, request: dict[str, Any]) -> tuple[int, Any]:
        with self._lock:
            valid = self._refresh.get(str(request.get("refresh_token")), 0) > time.monotonic()
            if not valid:
                return 401, {"error": "invalid refresh token"}
            access = secrets.token_hex(16)
            self._access[access] = time.monotonic() + self.access_ttl
        return 200, {"access_token": access}

    def _audit_events(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        try:
            size = int(query.get("size", ["100"])[0])
            page = int(query.get("page", ["1"])[0])
            window = json.loads(query["filter"][0]) if "filter" in query else None
        except (ValueError, KeyError):
            return 400, {"error": "invalid query"}
        if size < 1 or page < 1:
            return 400, {"error": "size and page start at 1"}
        with self._lock:
            events = list(self._events)
        if window is not None:
            if window.get("type") != "Between" or window.get("name") != "time":
                return 400, {"error": "unsupported filter"}
            low, high = int(window["fromValue"]), int(window["toValue"])
            events = [e for e in events if low <= e["time"] <= high]
        events.sort(key=lambda e: (e["time"], e["id"]), reverse=True)
        return 200, events[(page - 1) * size : page * size]


def _handler(stand_in: HorizonStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method: str) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, payload = stand_in.answer(method, self.path, headers, body)
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass  # the client gave up waiting (a stall): nothing left to answer

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


# what `./dev run` shows: logins, logouts and now and then a failed login (AUDIT_FAIL)
DEMO_EVENTS = (
    ("VLSI_USERLOGGEDIN_REST", "AUDIT_SUCCESS"),
    ("BROKER_USERLOGGEDOUT", "AUDIT_SUCCESS"),
    ("BROKER_USER_AUTHFAILED_BAD_USER_PASSWORD", "AUDIT_FAIL"),
)


class HorizonActivity(BackgroundActivity):
    """An audit event on the stand-in every `period` seconds, for `./dev run`."""

    def __init__(self, server: HorizonStandIn, period: float = 5.0) -> None:
        super().__init__("horizon-activity", period)
        self.server = server

    def _run(self) -> None:
        tick = 0
        while not self._stop.wait(self.period):
            kind, severity = DEMO_EVENTS[tick % len(DEMO_EVENTS)]
            self.server.emit(1, kind, severity)
            tick += 1
