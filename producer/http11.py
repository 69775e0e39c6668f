"""One HTTP/1.1 request and its response over an open keep-alive connection's socket.

The producer reads a page of events ten times a second per busy vCenter, and the
response is a few hundred bytes to a few KB of SOAP. http.client spends ~0.25 ms of CPU
per such exchange on building the request line by line and parsing the head through the
email package: most of an empty page's cost (0.31 ms), and as much as decoding five
events. Here the request is bytes made once and the response head is split by hand, which
costs ~0.07 ms. What is read is only what a SOAP server answers: a status line, header
lines, and a body by Content-Length, chunked transfer coding, or up to the connection's
close; anything else raises `BadResponse`, and the connection is not used again.

Only the socket is used: the http.client connection it belongs to stays idle, so the
stub's pool can hand it to pyVmomi for any other call.
"""

from __future__ import annotations

import re
import socket
import ssl
from dataclasses import dataclass
from http.client import HTTPException

# a response head larger than this is not a SOAP server's
MAX_HEAD_BYTES = 64 * 1024
_RECV_BYTES = 64 * 1024
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")


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
            raise ValueError(f"a line break in the request head: {line!r}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def exchange(sock: socket.socket | ssl.SSLSocket, request: bytes) -> Response:
    """Send `request` and read its response whole."""
    sock.sendall(request)
    return _Reader(sock).response()


class _Reader:
    def __init__(self, sock: socket.socket | ssl.SSLSocket) -> None:
        self._sock = sock
        self._data = b""
        self._closed = False

    def _more(self) -> bool:
        """Read what has arrived; False once the server has closed the connection."""
        if self._closed:
            return False
        chunk = self._sock.recv(_RECV_BYTES)
        if not chunk:
            self._closed = True
            return False
        self._data += chunk
        return True

    def _take(self, size: int) -> bytes:
        while len(self._data) < size:
            if not self._more():
                raise ConnectionClosed(
                    f"the connection closed {size - len(self._data)} bytes before the body's end"
                )
        taken, self._data = self._data[:size], self._data[size:]
        return taken

    def _line(self) -> bytes:
        """The next CRLF-terminated line, without the CRLF (chunked coding's lines)."""
        while (end := self._data.find(b"\r\n")) < 0:
            if len(self._data) > MAX_HEAD_BYTES:
                raise BadResponse("a chunk line longer than 64 KB")
            if not self._more():
                raise ConnectionClosed("the connection closed inside the chunked body")
        line, self._data = self._data[:end], self._data[end + 2 :]
        return line

    def response(self) -> Response:
        while (end := self._data.find(b"\r\n\r\n")) < 0:
            if len(self._data) > MAX_HEAD_BYTES:
                raise BadResponse("a response head longer than 64 KB")
            if not self._more():
                if self._data:
                    raise ConnectionClosed("the connection closed inside the response head")
                raise ConnectionClosed("the server closed the connection without a response")
        head, self._data = self._data[:end].decode("latin-1"), self._data[end + 4 :]
        status_line, *header_lines = head.split("\r\n")
        version, _, rest = status_line.partition(" ")
        code, _, reason = rest.partition(" ")
        if version not in ("HTTP/1.1", "HTTP/1.0") or len(code) != 3 or not code.isdigit():
            raise BadResponse(f"not an HTTP/1.x status line: {status_line[:100]!r}")
        status = int(code)
        if status < 200:
            raise BadResponse(f"an interim {status} response, which nothing here asks for")
        headers: dict[str, str] = {}
        for line in header_lines:
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip():
                raise BadResponse(f"not a header line: {line[:100]!r}")
            headers[name.lower()] = value.strip()
        connection = headers.get("connection", "").lower()
        keep_alive = "close" not in connection and (
            version == "HTTP/1.1" or "keep-alive" in connection
        )
        body = self._body(headers)
        return Response(status, reason, headers, body, keep_alive and not self._closed)

    def _body(self, headers: dict[str, str]) -> bytes:
        coding = headers.get("transfer-encoding", "").lower()
        if coding:
            if coding != "chunked":
                raise BadResponse(f"a transfer coding this reader does not follow: {coding!r}")
            return self._chunked()
        length = headers.get("content-length")
        if length is None:  # the body ends with the connection
            while self._more():
                pass
            body, self._data = self._data, b""
            return body
        if not (length.isascii() and length.isdigit()):
            raise BadResponse(f"not a Content-Length: {length[:100]!r}")
        return self._take(int(length))

    def _chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size_text = self._line().split(b";", 1)[0].strip()
            if not _CHUNK_SIZE.fullmatch(size_text):
                raise BadResponse(f"not a chunk size: {size_text[:100]!r}")
            size = int(size_text, 16)
            if size == 0:
                while self._line():  # trailer fields, up to the empty line
                    pass
                return b"".join(parts)
            parts.append(self._take(size))
            if self._take(2) != b"\r\n":
                raise BadResponse("a chunk not followed by CRLF")
