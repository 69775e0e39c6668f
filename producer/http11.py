"""One HTTP/1.1 request and its response over an open keep-alive connection's socket.

The producer reads a page of events ten times a second per busy vCenter, and the
response is a few hundred bytes to a few KB of SOAP. http.client spends ~0.25 ms of CPU
per such exchange on building the request line by line and parsing the head through the
email package: most of an empty page's cost (0.31 ms), and as much as decoding five
events. Here the request is bytes made once and the response is parsed by llhttp
(httptools, Node's parser in C), which costs ~0.07 ms; h11, pure Python, cost ~0.23 ms.
What is read is only what a SOAP server answers: a status line, header lines, and a body
by Content-Length, chunked transfer coding, or up to the connection's close; anything
llhttp refuses, an interim (1xx) response and any other transfer coding raise
`BadResponse`, and the connection is not used again.

Only the socket is used: the http.client connection it belongs to stays idle, so the
stub's pool can hand it to pyVmomi for any other call.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from http.client import HTTPException

import httptools

# a response head larger than this is not a SOAP server's
MAX_HEAD_BYTES = 64 * 1024
_RECV_BYTES = 64 * 1024


class BadResponse(HTTPException):
    """The server's answer is not an HTTP/1.x response this reader follows."""


class ConnectionClosed(HTTPException, ConnectionResetError):
    """The server closed the connection before the response was whole (as http.client's
    RemoteDisconnected, it is both an HTTPException and an OSError)."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    reason: str
    headers: dict[str, str]  # names in lower case; a repeated header's last value
    body: bytes
    keep_alive: bool  # the connection may carry the next request

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def request_bytes(method: str, path: str, host: str, headers: dict[str, str], body: bytes) -> bytes:
    """A whole HTTP/1.1 request, as http.client would send it (Host, Content-Length)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    for line in lines:
        if "\r" in line or "\n" in line:
            # named by what precedes its colon only: a Cookie's value is the session
            raise ValueError(f"a line break in the request head: {line.partition(':')[0]!r}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def exchange(sock: socket.socket | ssl.SSLSocket, request: bytes) -> Response:
    """Send `request` and read its response whole."""
    sock.sendall(request)
    reader = _Reader()
    parser = reader.parser
    while not reader.done:
        data = sock.recv(_RECV_BYTES)
        if not data:
            return reader.closed()
        if not reader.head_done:
            reader.head_bytes += data
        try:
            parser.feed_data(data)
        except httptools.HttpParserError as error:
            raise reader.refused(error) from None
        if not reader.head_done and len(reader.head_bytes) > MAX_HEAD_BYTES:
            raise BadResponse("a response head longer than 64 KB")
    return reader.response()


class _Reader:
    """llhttp's callbacks for one response (httptools.HTTPProtocol's response half)."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.head_bytes = b""  # what arrived before the head was whole
        self.reason = b""
        self.headers: dict[str, str] = {}
        self.parts: list[bytes] = []
        self.status_seen = False
        self.head_done = False
        self.done = False
        self.keep_alive = False

    def on_status(self, reason: bytes) -> None:
        self.status_seen = True
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.status_seen = True
        if not self.head_done:  # not a chunked body's trailer field
            self.headers[name.decode("latin-1").lower()] = value.decode("latin-1").strip()

    def on_headers_complete(self) -> None:
        self.head_done = True
        status = self.parser.get_status_code()
        if status < 200:
            raise BadResponse(f"an interim {status} response, which nothing here asks for")
        coding = self.headers.get("transfer-encoding", "").lower()
        if coding and coding != "chunked":  # llhttp would read the coded body up to the close
            raise BadResponse(f"a transfer coding this reader does not follow: {coding!r}")

    def on_body(self, body: bytes) -> None:
        self.parts.append(body)

    def on_message_complete(self) -> None:
        self.done = True
        self.keep_alive = self.parser.should_keep_alive()  # llhttp resets it afterwards

    def response(self) -> Response:
        return Response(
            self.parser.get_status_code(),
            self.reason.decode("latin-1"),
            self.headers,
            b"".join(self.parts),
            self.keep_alive,
        )

    def closed(self) -> Response:
        """The response at the connection's close: whole if its body ends there."""
        if not self.head_done:
            if self.head_bytes:
                raise ConnectionClosed("the connection closed inside the response head")
            raise ConnectionClosed("the server closed the connection without a response")
        if "transfer-encoding" in self.headers:
            raise ConnectionClosed(
                "the connection closed inside the chunked body, before the body's end"
            )
        length = self.headers.get("content-length")
        if length is not None:
            missing = int(length) - sum(map(len, self.parts))
            raise ConnectionClosed(f"the connection closed {missing} bytes before the body's end")
        self.keep_alive = False
        return self.response()

    def refused(self, error: httptools.HttpParserError) -> BadResponse:
        """`BadResponse` for what llhttp refuses, or for what a callback raised."""
        if isinstance(error.__context__, BadResponse):
            return error.__context__
        if self.head_done:
            return BadResponse(f"not a chunked body: {error}")
        if self.status_seen:
            return BadResponse(f"not a header line: {error}")
        first_line = self.head_bytes.partition(b"\r\n")[0]
        return BadResponse(f"not an HTTP/1.x status line: {error}: {first_line[:100]!r}")
