"""A VMware Horizon Connection Server to read audit events from."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from vcstream.settings.base import ConfigModel, Duration, Secret


def normalise_server_url(url: str) -> str:
    """`cs01.example.com`, `https://cs01:443/rest/` → `https://<host>[:port]`, port only if given.

    This is also the CloudEvent `source` of the server's events (VEBA's HorizonSource
    uses the server address), so it must never carry credentials or a path.
    """
    text = url.strip()
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("https", "http"):
        raise ValueError(f"Horizon URL scheme must be https or http, not {parts.scheme!r}")
    if not parts.hostname:
        raise ValueError(f"Horizon URL has no host: {url!r}")
    if parts.username or parts.password:
        raise ValueError("Horizon URL must not contain credentials; use username/password")
    host = parts.hostname
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{host}{port}"


class HorizonSettings(ConfigModel):
    name: str = Field(description="Short label used in metrics and logs, e.g. `cs01`.")
    url: str = Field(
        description="Connection Server address; normalised to https://<host>[:port], which is "
        "also the CloudEvent `source` of its events."
    )
    domain: str = Field(description="Active Directory domain of the user (login's `domain`).")
    username: str = Field(description="Horizon user; an administrator with read-only rights.")
    password: Secret = Field(description="Horizon password (a secret).")
    insecure: bool = Field(False, description="Skip TLS verification (logged as a warning).")
    ca_file: Path | None = Field(None, description="PEM bundle to verify the server with.")
    poll_interval: Duration = Field(
        timedelta(seconds=10),
        description="How often the audit events are read once caught up (Horizon has no "
        "change notification).",
    )
    page_size: int = Field(
        100, ge=1, le=1000, description="Audit events asked for per request (`size`)."
    )

    @field_validator("url")
    @classmethod
    def _normalise(cls, value: str) -> str:
        return normalise_server_url(value)
