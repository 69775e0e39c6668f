"""`sinks.http_client` against raw servers that answer with canned bytes: every way an
HTTP/1.1 answer can be delimited, and every way it can go wrong."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from sinks.http_client import HTTPClient, InvalidHeader, ProtocolError, Response

# request number → bytes to send (None: hang up; ending in CLOSE: send, then hang up)
Answer = Callable[[int], bytes | None]
CLOSE = b"\0close"


async def serve(
    answer: Answer,
    post: Callable[[HTTPClient], Awaitable[list[Response]]],
    hold: asyncio.Event | None = None,
) -> tuple[list[Response], list[bytes], int]:
    """Run `post` against a server answering request n with `answer(n)` (once `hold` is
    set, if given); returns the responses, the requests as received and how many
    connections were opened."""
    received: list[bytes] = []
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            received.append(head + await reader.readexactly(length))
            data = answer(len(received))
            if hold is not None:
                await hold.wait()
            if data is None:
                break
            writer.write(data.removesuffix(CLOSE))
            await writer.drain()
            if data.endswith(CLOSE):
                break
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = HTTPClient(f"http://127.0.0.1:{port}/in?x=1", connections=2, timeout=2)
    try:
        responses = await post(client)
    finally:
        await client.close()
        server.close()
    return responses, received, connections


def run(answer: Answer, count: int = 2) -> tuple[list[Response], list[bytes], int]:
    async def post(client: HTTPClient) -> list[Response]:
        return [await client.post({"ce-id": str(n)}, b'{"n":%d}' % n) for n in range(count)]

    return asyncio.run(serve(answer, post))


def test_content_length_answers_reuse_one_connection_and_requests_are_exact():
    responses, received, connections = run(
        lambda n: b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\nRetry-After: 3\r\n\r\nok"
    )
    assert [(r.status, r.body, r.headers["retry-after"]) for r in responses] == [
        (202, b"ok", "3")
    ] * 2
    assert connections == 1
    assert received[0].startswith(b"POST /in?x=1 HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"\r\nce-id: 0\r\nContent-Length: 7\r\n\r\n" in received[0]
    assert received[0].endswith(b'{"n":0}')


def test_chunked_answers_and_interim_100_continue_are_read():
    body = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n"
    body += b"4;ext=1\r\nbusy\r\n3\r\n!!!\r\n0\r\nX-Trailer: 1\r\n\r\n"
    responses, _, connections = run(lambda n: body)
    assert [(r.status, r.body) for r in responses] == [(503, b"busy!!!")] * 2
    assert connections == 1


def test_an_answer_ended_by_close_is_read_and_the_connection_not_reused():
    responses, _, connections = run(lambda n: b"HTTP/1.1 400 Bad\r\n\r\nno such thing" + CLOSE)
    assert [(r.status, r.body) for r in responses] == [(400, b"no such thing")] * 2
    assert connections == 2


def test_connection_close_header_opens_a_new_connection_next_time():
    responses, _, connections = run(
        lambda n: b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
    )
    assert [r.status for r in responses] == [204, 204]
    assert connections == 2


def test_a_hang_up_before_the_answer_is_a_connection_error():
    with pytest.raises(ConnectionResetError):
        run(lambda n: None, count=1)


def test_garbage_instead_of_http_is_a_protocol_error():
    with pytest.raises(ProtocolError, match="status line"):
        run(lambda n: b"SSH-2.0-OpenSSH\r\n\r\n", count=1)


def test_an_invalid_content_length_is_a_protocol_error():
    with pytest.raises(ProtocolError, match="Content-Length"):
        run(lambda n: b"HTTP/1.1 200 OK\r\nContent-Length: lots\r\n\r\n", count=1)


def test_a_silent_server_is_a_timeout_and_the_connection_is_dropped():
    async def post(client: HTTPClient) -> list[Response]:
        with pytest.raises(TimeoutError):
            await client.post({}, b"{}")
        assert client._idle == []
        return []

    async def silent_then(answer: Answer) -> None:
        await serve(answer, post)

    asyncio.run(silent_then(lambda n: b""))


def test_a_header_value_with_a_line_break_is_refused_before_sending():
    async def post(client: HTTPClient) -> list[Response]:
        with pytest.raises(InvalidHeader):
            await client.post({"content-type": "application/json\r\nX-Evil: 1"}, b"{}")
        return []

    _, received, connections = asyncio.run(serve(lambda n: None, post))
    assert (received, connections) == ([], 0)


def test_only_http_urls_are_accepted():
    with pytest.raises(ValueError, match="not an http"):
        HTTPClient("ftp://host/x", connections=1, timeout=1)


def test_an_http_1_0_server_gets_a_connection_per_request_and_loses_none() -> None:
    # Python's http.server answers in HTTP/1.0 and closes after each answer, as the
    # `./dev run` stand-ins do: a connection kept for reuse lost the next request with it
    # (half of 400 concurrent POSTs failed before the client read the version)
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Accept(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Accept)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()

    async def post_all() -> list[int]:
        client = HTTPClient(
            f"http://127.0.0.1:{server.server_address[1]}/", connections=8, timeout=10
        )
        try:
            answers = await asyncio.gather(
                *(client.post({"ce-id": str(n)}, b"{}") for n in range(400)),
                return_exceptions=True,
            )
        finally:
            await client.close()
        return [a.status if isinstance(a, Response) else 0 for a in answers]

    try:
        statuses = asyncio.run(post_all())
    finally:
        server.shutdown()
        server.server_close()
    assert statuses == [202] * 400


def test_a_header_name_that_is_not_printable_is_refused_before_sending():
    async def post(client: HTTPClient) -> list[Response]:
        with pytest.raises(InvalidHeader, match="not printable"):
            await client.post({"ce-\tid": "1"}, b"{}")
        return []

    _, received, connections = asyncio.run(serve(lambda n: None, post))
    assert (received, connections) == ([], 0)


def test_requests_beyond_the_connections_wait_and_a_cancelled_waiter_gives_back_its_slot():
    """Two connections, four requests: two wait; one of them is cancelled while waiting
    (its slot must not be lost), the others are answered once the server answers."""
    hold = asyncio.Event()

    async def post(client: HTTPClient) -> list[Response]:
        posts = [asyncio.create_task(client.post({}, b"{}")) for _ in range(4)]
        while len(client._waiters) < 2:  # two in flight, two waiting for a slot
            await asyncio.sleep(0.01)
        posts[2].cancel()
        hold.set()
        answers = await asyncio.gather(posts[0], posts[1], posts[3])
        assert posts[2].cancelled()
        assert (client._free, list(client._waiters)) == (2, [])
        # every slot is usable again: two more at once go through
        return [*answers, *await asyncio.gather(*(client.post({}, b"{}") for _ in range(2)))]

    accepted = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"
    responses, received, connections = asyncio.run(serve(lambda n: accepted, post, hold))
    assert [r.status for r in responses] == [202] * 5
    assert (len(received), connections) == (5, 2)


def test_a_client_closed_in_one_event_loop_posts_again_in_the_next():
    """The client looks its loop up once (a getpid system call per lookup on 3.11); once
    closed it binds to the loop it is used in next, not to the finished one."""
    from tests.sinks.receivers import Receiver, parse_cloudevent

    receiver = Receiver(parse_cloudevent).start()
    client = HTTPClient(receiver.url, connections=2, timeout=5)

    async def post_and_close() -> int:
        try:
            answer = await client.post(
                {"ce-id": "1", "ce-specversion": "1.0", "ce-source": "s", "ce-type": "t"}, b"{}"
            )
        finally:
            await client.close()
        return answer.status

    try:
        statuses = [asyncio.run(post_and_close()), asyncio.run(post_and_close())]
    finally:
        receiver.stop()
    assert all(200 <= status < 300 for status in statuses), statuses
    assert receiver.requests == 2
