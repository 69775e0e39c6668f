"""producer.http11 against a real TCP server on 127.0.0.1 that answers with scripted
bytes: every way of ending a body, and every answer it must refuse."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from producer import http11

REQUEST = http11.request_bytes("POST", "/sdk", "127.0.0.1:443", {"SOAPAction": "x"}, b"<a/>")


class Scripted:
    """Accepts one connection, answers each request with the next scripted bytes, and
    closes the connection after the last."""

    def __init__(self, answers: list[bytes]) -> None:
        self.answers = answers
        self.requests: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            for answer in self.answers:
                self.requests.append(conn.recv(65536))
                conn.sendall(answer)

    def connect(self) -> socket.socket:
        return socket.create_connection(self.listener.getsockname(), timeout=10)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def serve() -> Iterator[list[Scripted]]:
    made: list[Scripted] = []
    yield made
    for server in made:
        server.close()


def answer(serve: list[Scripted], *answers: bytes) -> socket.socket:
    server = Scripted(list(answers))
    serve.append(server)
    return server.connect()


def test_the_request_is_what_http_client_sends() -> None:
    assert REQUEST == (
        b"POST /sdk HTTP/1.1\r\nHost: 127.0.0.1:443\r\nSOAPAction: x\r\n"
        b"Content-Length: 4\r\n\r\n<a/>"
    )


def test_a_line_break_in_a_header_is_refused_naming_the_header_not_its_value() -> None:
    with pytest.raises(ValueError, match="line break in the request head: 'Cookie'") as error:
        http11.request_bytes("POST", "/", "h", {"Cookie": "secret\r\nX-Evil: 1"}, b"")
    assert "secret" not in str(error.value)  # a session cookie stays out of errors


def test_a_body_by_content_length_then_another_on_the_same_connection(serve) -> None:
    sock = answer(
        serve,
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nSet-Cookie: s=1\r\n\r\nhello",
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\n\r\nno",
    )
    first = http11.exchange(sock, REQUEST)
    assert (first.status, first.body, first.keep_alive) == (200, b"hello", True)
    assert first.header("set-cookie") == first.header("Set-Cookie") == "s=1"
    second = http11.exchange(sock, REQUEST)
    assert (second.status, second.reason, second.body) == (500, "Internal Server Error", b"no")
    assert serve[0].requests == [REQUEST, REQUEST]


def test_a_chunked_body_with_extensions_and_trailers(serve) -> None:
    sock = answer(
        serve,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n",
    )
    response = http11.exchange(sock, REQUEST)
    assert response.body == b"hello 0123456789"
    assert response.keep_alive


def test_a_body_up_to_the_close_and_connection_close_end_the_connection(serve) -> None:
    sock = answer(serve, b"HTTP/1.1 200 OK\r\n\r\nall of it")
    response = http11.exchange(sock, REQUEST)
    assert (response.body, response.keep_alive) == (b"all of it", False)
    sock = answer(serve, b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
    assert not http11.exchange(sock, REQUEST).keep_alive
    sock = answer(serve, b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert not http11.exchange(sock, REQUEST).keep_alive


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 100 Continue\r\n\r\n", "interim 100"),
        (b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "not a header line"),
        # llhttp's own words for the line it refuses (httptools)
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "in Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "transfer coding"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n", "in chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x1\r\n", "in chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n", "after chunk data"),
    ],
)
def test_what_is_not_a_soap_servers_answer_is_refused(serve, reply: bytes, problem: str) -> None:
    with pytest.raises(http11.BadResponse, match=problem):
        http11.exchange(answer(serve, reply), REQUEST)


def test_a_head_that_never_ends_is_refused(serve) -> None:
    sock = answer(serve, b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 20_000)
    with pytest.raises(http11.BadResponse, match="longer than 64 KB"):
        http11.exchange(sock, REQUEST)


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        (b"", "without a response"),
        (b"HTTP/1.1 200 OK\r\nContent-Le", "inside the response head"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf", "6 bytes before the body's end"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", "before the body"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", "inside the"),
    ],
)
def test_a_connection_closed_mid_response_raises_an_oserror(
    serve, reply: bytes, problem: str
) -> None:
    # a pooled connection the server closed meanwhile: the caller drops it, as with
    # http.client's RemoteDisconnected; a cut body is never taken for a whole one
    with pytest.raises(http11.ConnectionClosed, match=problem) as raised:
        http11.exchange(answer(serve, reply), REQUEST)
    assert isinstance(raised.value, OSError)
