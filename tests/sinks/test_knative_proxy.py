"""The Knative sink through an outbound HTTP proxy (a real one, tinyproxy): plain HTTP as
absolute URLs, HTTPS through a CONNECT tunnel with TLS to the Broker inside it; a proxy
that cannot open the tunnel is an error naming it."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from devenv.process import free_port
from devenv.proxy import LocalProxy
from devenv.receivers import CloudEventsDisplay
from devenv.vcsim import make_certificate
from schemas import decode
from schemas.codec import encode_vsphere
from sinks.base import SinkEvent
from sinks.http_client import HTTPClient
from sinks.knative import KnativeSink
from tests.sinks.helpers import VCENTER
from tests.sinks.test_slack import alarm_data
from vcstream.proxy import parse_proxy
from vcstream.settings.sinks import KnativeSinkSettings

pytestmark = pytest.mark.integration
ENV = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy")


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[LocalProxy]:
    running = LocalProxy(tmp_path / "proxy").start()
    yield running
    running.stop()


@pytest.fixture
def display() -> Iterator[CloudEventsDisplay]:
    server = CloudEventsDisplay(free_port(), None)
    server.start()
    yield server
    server.stop()


def test_knative_sink_posts_through_the_environments_proxy(
    display: CloudEventsDisplay, proxy: LocalProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    record = encode_vsphere(alarm_data(1), "AlarmStatusChangedEvent", VCENTER)
    sink = KnativeSink(KnativeSinkSettings(url=display.url))

    async def deliver() -> None:
        await sink.start()
        try:
            await sink.deliver([SinkEvent(decode(record), record)])
        finally:
            await sink.close()

    asyncio.run(deliver())
    assert display.count == 1
    assert proxy.requests() == [f"POST {display.url} HTTP/1.1"]


def test_https_goes_through_a_connect_tunnel(
    proxy: LocalProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = make_certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts the test's own CA
    server = CloudEventsDisplay(free_port(), None)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server._server.socket = context.wrap_socket(server._server.socket, server_side=True)
    server.start()
    port = server._server.server_address[1]
    event = {
        "ce-specversion": "1.0",
        "ce-id": "1",
        "ce-source": "https://vc01/sdk",
        "ce-type": "com.vmware.vsphere.VmPoweredOnEvent.v0",
        "Content-Type": "application/json",
    }

    async def post_twice() -> list[int]:
        client = HTTPClient(
            f"https://127.0.0.1:{port}/", connections=1, timeout=30, proxy=parse_proxy(proxy.url)
        )
        try:
            return [(await client.post(event, b"{}")).status for _ in range(2)]
        finally:
            await client.close()

    try:
        assert asyncio.run(post_twice()) == [202, 202]
    finally:
        server.stop()
    assert server.count == 2  # TLS end to end: the receiver decoded both events
    # the stand-in answers HTTP/1.0 and closes: a tunnel per request, each through the proxy
    assert proxy.requests() == [f"CONNECT 127.0.0.1:{port} HTTP/1.1"] * 2


def test_a_tunnel_the_proxy_cannot_open_is_an_error_naming_it(proxy: LocalProxy) -> None:
    closed = free_port()  # nothing listens: the proxy answers CONNECT with an error

    async def post() -> None:
        client = HTTPClient(
            f"https://127.0.0.1:{closed}/", connections=1, timeout=30, proxy=parse_proxy(proxy.url)
        )
        try:
            await client.post({}, b"{}")
        finally:
            await client.close()

    with pytest.raises(
        ConnectionRefusedError, match=rf"proxy refused CONNECT 127\.0\.0\.1:{closed}"
    ):
        asyncio.run(post())
