"""A vCenter to read events from."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from vcstream.settings.base import ConfigModel, Secret, server_origin


def normalise_sdk_url(url: str) -> str:
    """`vc.example.com`, `https://vc:443/` → `https://<host>[:port]/sdk`: also the
    CloudEvent `source` of the vCenter's events."""
    return server_origin(url, "vCenter") + "/sdk"


class VCenterSettings(ConfigModel):
    name: str = Field(description="Short label used in metrics and logs, e.g. `vc01`.")
    url: str = Field(description="vCenter address; normalised to https://<host>[:port]/sdk.")
    username: str = Field(description="vCenter user; read-only rights are enough.")
    password: Secret = Field(description="vCenter password (a secret).")
    insecure: bool = Field(False, description="Skip TLS verification (logged as a warning).")
    ca_file: Path | None = Field(None, description="PEM bundle to verify the vCenter with.")
    proxy: str | None = Field(
        None,
        description="HTTP proxy to reach this vCenter through, e.g. `http://proxy:3128`; "
        "`direct` for none. Unset: `HTTPS_PROXY` / `HTTP_PROXY` unless `NO_PROXY` names "
        "the host.",
    )

    @field_validator("proxy")
    @classmethod
    def _proxy(cls, value: str | None) -> str | None:
        from vcstream.proxy import DIRECT, parse_proxy

        if value is not None and value != DIRECT:
            parse_proxy(value)  # a malformed proxy is a configuration error, named here
        return value

    @field_validator("url")
    @classmethod
    def _normalise(cls, value: str) -> str:
        return normalise_sdk_url(value)
