"""A lean HTTP/1.1 client for POSTs to one origin, over a pool of keep-alive connections.

Why not aiohttp, which this replaced for the Knative sink: profiled (py-spy, bench.knative),
aiohttp's per-request machinery (a ClientRequest, a payload writer, a response object
with a stream reader, connector bookkeeping) was most of the sink's CPU time per event,
and the sink needs none of it: it POSTs prebuilt headers and a small body and reads a
status, a few headers and a small answer. Here a request is one `transport.write` and
the answer is parsed from the bytes as they arrive, in the connection's protocol.

Scope, on purpose: HTTP/1.1, one origin (http or https, directly or through an HTTP
proxy: absolute URLs, or CONNECT for https), one request at a time per
connection (no pipelining), answers delimited by Content-Length, chunked encoding, or
the connection's close. A connection is reused unless the answer said `Connection:
close` or ended at close; one idle longer than `IDLE_SECONDS` is dropped rather than
reused, so as not to race the server closing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

from vcstream.proxy import Proxy

IDLE_SECONDS = 15.0  # below the idle timeouts of common servers (Go's and nginx's: 60+)
MIN_SWEEP_SECONDS = 0.05
MAX_HEAD_BYTES = 64 * 1024
# answers' heads seen lately, parsed: a receiver sends the same head again and again
# (only its Date changes, once a second), so most answers skip the parse
_HEADS_CACHED = 64
_heads: dict[bytes, tuple[int, dict[str, str]]] = {}
# header names already checked: the same few on every request
_NAMES_CACHED = 1024


class InvalidHeader(ValueError):
    """A header name or value that would break the request (CR, LF or NUL in it)."""


class ProtocolError(ConnectionError):
    """The server's answer is not HTTP/1.x as this client reads it."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    # names lowercased; a repeated header: the last wins. Shared by the answers that had
    # the same head (`_parse_head`'s cache): read it, never change it
    headers: dict[str, str]
    body: bytes


class _Answer:
    """Incremental parse of one response from a connection's bytes."""

    def __init__(self, head_only: bool = False) -> None:
        self.head: tuple[int, dict[str, str]] | None = None
        self.body = bytearray()
        self.length: int | None = None  # Content-Length; None: chunked or until close
        self.chunked = False
        self.head_only = head_only

    def feed(self, buffer: bytearray) -> Response | None:
        """A complete response taken from the front of `buffer`, or None for more bytes."""
        while self.head is None:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD_BYTES:
                    raise ProtocolError("response head larger than 64 KiB")
                return None
            status, headers = _parse_head(bytes(buffer[:end]))
            del buffer[: end + 4]
            if 100 <= status < 200:  # an interim answer (100 Continue): the real one follows
                continue
            self.head = (status, headers)
            if status in (204, 304) or self.head_only:
                self.length = 0
            elif "chunked" in headers.get("transfer-encoding", "").lower():
                self.chunked = True
            elif "content-length" in headers:
                try:
                    self.length = int(headers["content-length"])
                except ValueError:
                    raise ProtocolError("invalid Content-Length") from None
        if self.chunked:
            return self._chunks(buffer)
        if self.length is None:
            return None  # delimited by the close: `finish` completes it
        if len(buffer) < self.length:
            return None
        self.body += buffer[: self.length]
        del buffer[: self.length]
        return self._response()

    def _chunks(self, buffer: bytearray) -> Response | None:
        while True:
            line_end = buffer.find(b"\r\n")
            if line_end < 0:
                return None
            try:
                size = int(bytes(buffer[:line_end]).split(b";")[0], 16)
            except ValueError:
                raise ProtocolError("invalid chunk size") from None
            if size == 0:
                trailer_end = buffer.find(b"\r\n\r\n", line_end)
                if trailer_end < 0:
                    return None
                del buffer[: trailer_end + 4]
                return self._response()
            if len(buffer) < line_end + 2 + size + 2:
                return None
            self.body += buffer[line_end + 2 : line_end + 2 + size]
            del buffer[: line_end + 2 + size + 2]

    def finish(self, buffer: bytearray) -> Response | None:
        """At the connection's close: the response if it was delimited by the close."""
        if self.head is not None and self.length is None and not self.chunked:
            self.body += buffer
            return self._response()
        return None

    def _response(self) -> Response:
        assert self.head is not None
        return Response(self.head[0], self.head[1], bytes(self.body))


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    parsed = _heads.get(head)
    if parsed is None:
        parsed = _read_head(head)
        if len(_heads) >= _HEADS_CACHED:
            _heads.clear()
        _heads[head] = parsed
    return parsed


def _read_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ProtocolError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    if parts[0] == "HTTP/1.0" and headers.get("connection", "").lower() != "keep-alive":
        # an HTTP/1.0 server closes after each answer unless it says otherwise (RFC 9112
        # 9.3): a request sent meanwhile on the connection was lost with it
        headers["connection"] = "close"
    return int(parts[1]), headers


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the one it was made in
        self.closed = False
        self.reusable = True
        self.idle_since = time.monotonic()
        self.deadline = 0.0  # loop time by which the request in flight must be answered
        self._buffer = bytearray()
        self._answer: _Answer | None = None
        self._waiter: asyncio.Future[Response] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._loop = asyncio.get_running_loop()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._answer is None or self._waiter is None or self._waiter.done():
            return
        try:
            response = self._answer.feed(self._buffer)
        except ProtocolError as exc:
            self._fail(exc)
            return
        if response is not None:
            self.reusable = response.headers.get("connection", "").lower() != "close"
            self._answer = None
            self._waiter.set_result(response)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        if self._waiter is None or self._waiter.done() or self._answer is None:
            return
        response = self._answer.finish(self._buffer)
        if response is not None:
            self._waiter.set_result(response)
        else:
            self._fail(exc or ConnectionResetError("server closed the connection"))

    def _fail(self, exc: Exception) -> None:
        self.reusable = False
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        self.close()

    @property
    def waiting(self) -> bool:
        """A request was sent and its answer is still awaited."""
        return self._waiter is not None and not self._waiter.done()

    def time_out(self, timeout: float) -> None:
        self._fail(TimeoutError(f"no answer within {timeout:g}s"))

    def request(
        self, data: bytes, head_only: bool = False, deadline: float = float("inf")
    ) -> asyncio.Future[Response]:
        """Send `data`; the answer, to await (the client fails it after `deadline`);
        `head_only`: an answer without a body (a proxy's to CONNECT, after which the
        connection carries the tunnel). A future, not a coroutine: one object fewer per
        request."""
        if self.transport is None or self.closed or self._loop is None:
            raise ConnectionResetError("connection closed before the request")
        self.deadline = deadline
        self._answer = _Answer(head_only)
        self._waiter = self._loop.create_future()
        self._buffer.clear()
        self.transport.write(data)
        return self._waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class HTTPClient:
    """POSTs to `url` over at most `connections` keep-alive connections.

    Per request, no lock and no timer: a free slot is a counter (a waiter queue only
    when all are taken), and one timer per client, every `timeout / 10` (at least
    `MIN_SWEEP_SECONDS`), fails the requests past their deadline, so a request times
    out between `timeout` and `timeout` plus that period. An `asyncio.Semaphore` and an
    `asyncio.timeout` per request were a tenth of the Knative sink's CPU time (py-spy).

    A client is used in one event loop (its connections are that loop's) until `close`:
    the loop is looked up once. On CPython 3.11, `asyncio.get_running_loop()` calls
    `getpid()` to notice a fork, a system call each time (glibc no longer caches it):
    two per request were 12% of the Knative sink's CPU (py-spy --native)."""

    def __init__(
        self, url: str, *, connections: int, timeout: float, proxy: Proxy | None = None
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url}")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self._proxy = proxy
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = parts.netloc.rpartition("@")[2]  # never credentials in the Host header
        if proxy is not None and self._ssl is None:
            # through a proxy, plain HTTP names the whole URL (RFC 9112 3.2.2)
            target = f"http://{host}{target}"
        self._start = f"POST {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: vcstream\r\n"
        self._timeout = timeout
        self._sweep_every = max(MIN_SWEEP_SECONDS, timeout / 10)
        self._sweeper: asyncio.TimerHandle | None = None
        self._free = connections  # slots not in use
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._idle: list[_Connection] = []
        self._open: set[_Connection] = set()
        self._names: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def start(self) -> str:
        """What every request begins with: its request line, `Host` and `User-Agent`."""
        return self._start

    def lines(self, headers: dict[str, str]) -> str:
        """`headers` as request header lines; refuses names and values that would split
        the request."""
        block = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
        # one line per header, or a name or value broke a line: find which
        lines = len(headers)
        if block.count("\n") != lines or block.count("\r") != lines or "\0" in block:
            for name, value in headers.items():
                if "\r" in value or "\n" in value or "\0" in value or not name.isprintable():
                    raise InvalidHeader(f"header {name!r} has a line break or NUL in its value")
        for name in headers:
            if name not in self._names:
                if not name.isprintable():
                    raise InvalidHeader(f"header name {name!r} is not printable")
                if len(self._names) < _NAMES_CACHED:  # bounded whatever the input
                    self._names.add(name)
        return block

    def head(self, headers: dict[str, str], length: int) -> bytes:
        """The request's start line and headers; refuses values that would split it."""
        return f"{self._start}{self.lines(headers)}Content-Length: {length}\r\n\r\n".encode()

    async def post(self, headers: dict[str, str], body: bytes) -> Response:
        return await self.send(self.head(headers, len(body)) + body)

    async def send(self, data: bytes) -> Response:
        """Send a whole request, built by the caller from `start` and `lines` (a caller
        sending many alike builds their common bytes once: the Knative sink, per header
        layout); its bytes are not checked here."""
        if self._free and not self._waiters:
            self._free -= 1
        else:
            await self._slot()
        try:
            loop = self._loop or self._bind()
            deadline = loop.time() + self._timeout
            connection = self._take_idle()
            if connection is None:
                async with asyncio.timeout_at(deadline):
                    connection = await self._connect()
            if self._sweeper is None:
                self._sweeper = loop.call_at(loop.time() + self._sweep_every, self._sweep)
            try:
                response = await connection.request(data, deadline=deadline)
            except BaseException:  # a reset, a timeout, a cancel: never reuse it
                connection.close()
                self._open.discard(connection)
                raise
        finally:
            self._release()
        if connection.reusable and not connection.closed:
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        else:
            connection.close()
            self._open.discard(connection)
        return response

    def _bind(self) -> asyncio.AbstractEventLoop:
        self._loop = asyncio.get_running_loop()
        return self._loop

    async def _slot(self) -> None:
        """Wait for a slot: `_release` hands it over to the first waiter."""
        waiter = (self._loop or self._bind()).create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._release()  # handed a slot, but leaving: pass it on
            else:
                with contextlib.suppress(ValueError):  # `_release` may have dropped it
                    self._waiters.remove(waiter)
            raise

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1

    def _sweep(self) -> None:
        """Fail the requests past their deadline; again while any is in flight."""
        loop = self._loop or self._bind()
        now = loop.time()
        waiting = False
        for connection in list(self._open):
            if connection.waiting:
                if connection.deadline <= now:
                    connection.time_out(self._timeout)
                else:
                    waiting = True
        self._sweeper = loop.call_at(now + self._sweep_every, self._sweep) if waiting else None

    def _take_idle(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()  # the most recent: the least likely to be stale
            if not connection.closed and now - connection.idle_since < IDLE_SECONDS:
                return connection
            connection.close()
            self._open.discard(connection)
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        if self._proxy is None:
            _, connection = await loop.create_connection(
                _Connection,
                self._host,
                self._port,
                ssl=self._ssl,
                server_hostname=self._host if self._ssl else None,
            )
        else:
            _, connection = await loop.create_connection(
                _Connection, self._proxy.host, self._proxy.port
            )
            if self._ssl is not None:
                try:
                    await self._tunnel(loop, connection)
                except BaseException:
                    connection.close()
                    raise
        self._open.add(connection)
        return connection

    async def _tunnel(self, loop: asyncio.AbstractEventLoop, connection: _Connection) -> None:
        """HTTPS through the proxy: CONNECT, then TLS with the target over the tunnel."""
        assert self._ssl is not None and connection.transport is not None
        authority = f"{self._host}:{self._port}"
        answer = await connection.request(
            f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode(),
            head_only=True,
        )
        if answer.status != 200:
            raise ConnectionRefusedError(f"proxy refused CONNECT {authority}: {answer.status}")
        transport = await loop.start_tls(
            connection.transport, connection, self._ssl, server_hostname=self._host
        )
        if transport is None:
            raise ConnectionResetError("proxy closed the tunnel during the TLS handshake")
        connection.transport = transport

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for connection in self._open:
            connection.close()
        self._open.clear()
        self._idle.clear()
        self._loop = None  # free to be used in another loop
