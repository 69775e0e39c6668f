"""A VMware Horizon Connection Server to read audit events from."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field, field_validator

from vcstream.settings.base import ConfigModel, Duration, Secret, server_origin


def normalise_server_url(url: str) -> str:
    """`cs01.example.com`, `https://cs01:443/rest/` → `https://<host>[:port]`: also the
    CloudEvent `source` of the server's events (VEBA's HorizonSource uses the address)."""
    return server_origin(url, "Horizon")


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
