"""Which outbound HTTP(S) proxy a connection takes: a setting, else the environment.

Operators behind a proxy set `HTTPS_PROXY` / `HTTP_PROXY` and `NO_PROXY` for every tool
they run; vcstream follows them (the standard library's reading of them: lower or upper
case, `NO_PROXY` hosts, domains and `*`). A setting names a proxy for one connection
instead, or `direct` for none, whatever the environment says.
"""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

DIRECT = "direct"


@dataclass(frozen=True)
class Proxy:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def parse_proxy(url: str) -> Proxy:
    """`http://host:port` (or `host:port`); the proxy is spoken to in plain HTTP."""
    text = url if "://" in url else f"http://{url}"
    parts = urlsplit(text)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"a proxy is http://host:port, not {url!r}")
    return Proxy(parts.hostname, parts.port or 80)


def proxy_for(target_url: str, configured: str | None = None) -> Proxy | None:
    """The proxy for `target_url`: `configured` when set (`direct`: none), else the
    environment's proxy for its scheme unless NO_PROXY covers its host."""
    if configured:
        return None if configured == DIRECT else parse_proxy(configured)
    parts = urlsplit(target_url)
    host = parts.hostname or ""
    # public in urllib.request since Python 2, missing only from typeshed's stubs
    if urllib.request.proxy_bypass_environment(host):  # type: ignore[attr-defined]
        return None
    found = urllib.request.getproxies_environment().get(parts.scheme)
    return parse_proxy(found) if found else None
