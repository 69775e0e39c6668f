"""The Slack sink honours HTTPS_PROXY / HTTP_PROXY / NO_PROXY or its `proxy` setting,
through a real forward proxy (slack_sdk alone would read HTTPS_PROXY and ignore NO_PROXY)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from devenv.process import free_port
from devenv.proxy import LocalProxy
from devenv.receivers import SlackConsole
from schemas import decode
from schemas.codec import encode_vsphere
from sinks.base import SinkEvent
from sinks.slack import SlackSink
from tests.sinks.helpers import VCENTER
from tests.sinks.test_slack import alarm_data
from vcstream.settings.sinks import SlackSinkSettings

pytestmark = pytest.mark.integration
ENV = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy")


@pytest.fixture
def console() -> Iterator[SlackConsole]:
    server = SlackConsole(free_port(), None)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[LocalProxy]:
    running = LocalProxy(tmp_path / "proxy").start()
    yield running
    running.stop()


def send_one(url: str, proxy: str | None = None) -> None:
    record = encode_vsphere(alarm_data(1), "AlarmStatusChangedEvent", VCENTER)
    sink = SlackSink(SlackSinkSettings(webhookUrl=url, proxy=proxy))

    async def deliver() -> None:
        await sink.start()
        try:
            await sink.deliver([SinkEvent(decode(record), record)])
        finally:
            await sink.close()

    asyncio.run(deliver())


def test_slack_messages_go_through_the_environments_proxy(
    console: SlackConsole, proxy: LocalProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)  # the stand-in webhook speaks plain HTTP
    send_one(console.url)
    assert console.count == 1
    assert proxy.requests() == [f"POST {console.url} HTTP/1.1"]


def test_no_proxy_and_direct_keep_slack_off_the_proxy(
    console: SlackConsole, proxy: LocalProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    send_one(console.url)
    monkeypatch.delenv("NO_PROXY")
    send_one(console.url, proxy="direct")
    assert console.count == 2
    assert proxy.requests() == []
