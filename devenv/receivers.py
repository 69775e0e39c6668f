"""Stand-ins for a Knative broker and a Slack webhook on a machine without either:
HTTP servers on 127.0.0.1 that accept what vcstream's sinks send and print one line per
event (`./dev run`), keeping what they got for the end-to-end test to inspect."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cloudevents.core.bindings import http as http_binding
from cloudevents.core.formats.json import JSONFormat

Printer = Callable[[str], None]


class _Receiver:
    """A threaded HTTP server that hands each POST body to `accept`."""

    def __init__(self, port: int, printer: Printer | None, retain: bool = True) -> None:
        self.printer = printer
        self.retain = retain  # False for long runs: only `count` grows
        self.received: list[Any] = []
        self.count = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    line = receiver.accept({k.lower(): v for k, v in self.headers.items()}, body)
                except ValueError as exc:
                    self.send_response(400)
                    self.end_headers()
                    self.wfile.write(str(exc).encode())
                    return
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()
                if receiver.printer is not None:
                    receiver.printer(line)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def accept(self, headers: dict[str, str], body: bytes) -> str:
        raise NotImplementedError

    def keep(self, item: Any) -> None:
        with self._lock:
            self.count += 1
            if self.retain:
                self.received.append(item)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    def start(self) -> _Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        # shutdown() waits for serve_forever() to return: never started, it would wait forever
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()


class CloudEventsDisplay(_Receiver):
    """Like Knative's event_display: every CloudEvent (binary or structured) it receives."""

    def accept(self, headers: dict[str, str], body: bytes) -> str:
        try:
            event = http_binding.from_http(http_binding.HTTPMessage(headers, body), JSONFormat())
        except Exception as exc:  # the SDK raises several types for invalid events
            raise ValueError(f"not a CloudEvent: {exc}") from None
        self.keep(event)
        data = event.get_data()
        entity = ""
        if isinstance(data, dict):
            for name in ("Vm", "Host", "Datacenter"):
                ref = data.get(name)
                if isinstance(ref, dict) and ref.get("Name"):
                    entity = f" {name}={ref['Name']}"
                    break
        return f"[knative] {event.get_type()}{entity} id={event.get_id()}"


class SlackConsole(_Receiver):
    """An incoming-webhook stand-in: prints each message's fallback text."""

    def accept(self, headers: dict[str, str], body: bytes) -> str:
        try:
            message = json.loads(body)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON: {exc}") from None
        if not isinstance(message, dict) or not (message.get("text") or message.get("blocks")):
            raise ValueError("a Slack message needs text or blocks")
        self.keep(message)
        return f"[slack] {message.get('text') or '(blocks only)'}"
