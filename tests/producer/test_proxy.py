"""Outbound proxies for the vCenter connection: HTTPS_PROXY / NO_PROXY as every tool reads
them, or the vCenter's `proxy` setting (`direct`: none), through a real forward proxy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devenv import LocalVcsim
from devenv.proxy import LocalProxy
from producer.connection import connect
from vcstream.proxy import Proxy, proxy_for
from vcstream.settings.vcenter import VCenterSettings

ENV = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_environment_names_the_proxy_unless_no_proxy_covers_the_host(
    clean_env: pytest.MonkeyPatch,
) -> None:
    assert proxy_for("https://vc01.example.com/sdk") is None
    clean_env.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert proxy_for("https://vc01.example.com/sdk") == Proxy("proxy.example", 3128)
    assert proxy_for("http://vc01.example.com/sdk") is None  # HTTP_PROXY is not set
    clean_env.setenv("NO_PROXY", ".example.com")
    assert proxy_for("https://vc01.example.com/sdk") is None


def test_a_setting_wins_over_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert proxy_for("https://vc/sdk", "direct") is None
    assert proxy_for("https://vc/sdk", "other.example:8080") == Proxy("other.example", 8080)


def test_a_malformed_proxy_setting_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="a proxy is http://host:port"):
        VCenterSettings(name="vc", url="vc", username="u", password="p", proxy="socks5://x:1")


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[LocalProxy]:
    running = LocalProxy(tmp_path / "proxy").start()
    yield running
    running.stop()


def vcenter(sim: LocalVcsim, proxy: str | None = None) -> VCenterSettings:
    return VCenterSettings(
        name="sim",
        url=sim.url,
        username=sim.username,
        password=sim.password,
        caFile=sim.ca_file,
        proxy=proxy,
    )


@pytest.mark.integration
def test_vcenter_connection_goes_through_https_proxy(
    vcsim: LocalVcsim, proxy: LocalProxy, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("HTTPS_PROXY", proxy.url)
    session = connect(vcenter(vcsim), 30)
    assert session.identity.api_version
    session.close()
    tunnels = proxy.requests()
    assert tunnels and set(tunnels) == {f"CONNECT 127.0.0.1:{vcsim.port} HTTP/1.0"}


@pytest.mark.integration
def test_vcenter_setting_direct_bypasses_the_environments_proxy(
    vcsim: LocalVcsim, proxy: LocalProxy, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # nothing listens: would fail
    session = connect(vcenter(vcsim, proxy="direct"), 30)
    session.close()
    assert proxy.requests() == []
    clean_env.delenv("HTTPS_PROXY")
    session = connect(vcenter(vcsim, proxy=proxy.url), 30)  # the setting, no environment
    session.close()
    assert set(proxy.requests()) == {f"CONNECT 127.0.0.1:{vcsim.port} HTTP/1.0"}
