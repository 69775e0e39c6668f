"""The HTTP gateway: CloudEvents in on a webhook, the stream out over watch requests."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from vcstream.settings.base import ConfigModel, Duration, Secret

# the CloudEvents attributes a record key can be built from
KEY_ATTRIBUTES = ("id", "source", "type", "subject", "dataschema")


class GatewayTlsSettings(ConfigModel):
    cert_file: Path = Field(description="PEM certificate (chain) the gateway serves HTTPS with.")
    key_file: Path = Field(description="PEM private key of that certificate.")


class GatewayAuthSettings(ConfigModel):
    """Who may post and watch; with neither basic auth nor tokens, anyone may."""

    basic: Secret | None = Field(
        None,
        description=(
            "Basic auth credentials as `user:password`, as `curl -u` takes them (a secret: "
            "one value, so one Kubernetes Secret key or environment variable holds both)."
        ),
    )
    bearer_tokens: list[Secret] = Field(
        default_factory=list,
        description="Tokens accepted as `Authorization: Bearer <token>` (each a secret).",
    )


class WatchSettings(ConfigModel):
    topic: str | None = Field(
        None, description="Topic the read API serves; empty: `topics.events` (the raw stream)."
    )
    max_watches: int = Field(
        50, ge=1, le=1000, description="Concurrent watches; one more is refused with 429."
    )
    batch_size: int = Field(
        100, ge=1, le=10000, description="Records a watch reads from Kafka before writing them."
    )
    heartbeat: Duration = Field(
        timedelta(seconds=15),
        description="A quiet Server-Sent Events watch sends a comment this often (proxies).",
    )


class GatewaySettings(ConfigModel):
    host: str = Field("0.0.0.0", description="Address the gateway's HTTP server binds.")
    port: int = Field(8082, ge=0, le=65535, description="Its port; 0 picks a free one (tests).")
    path: str = Field("/webhook", description="Path CloudEvents are POSTed to (VEBA's default).")
    topic: str = Field("vcstream.webhook", description="Topic posted events are written to.")
    partitions: int = Field(6, ge=1, description="Partitions of that topic when created.")
    key: list[str] = Field(
        default_factory=lambda: ["source", "subject"],
        description=(
            "Attributes whose values, joined by `/`, are the record key (absent ones are "
            "skipped; none present: no key)."
        ),
    )
    max_event_size: int = Field(
        256 * 1024, ge=1, description="Largest event in bytes (its JSON); larger gets 413."
    )
    max_request_size: int = Field(
        4 * 1024 * 1024, ge=1, description="Largest request body in bytes; larger gets 413."
    )
    max_batch_events: int = Field(
        1000, ge=1, description="Most events in one batched request; more gets 413."
    )
    ack_timeout: Duration = Field(
        timedelta(seconds=10),
        description="How long a request waits for Kafka to acknowledge its events before 503.",
    )
    retry_after: Duration = Field(
        timedelta(seconds=5), description="`Retry-After` sent with a 503 or 429."
    )
    rate_limit: float | None = Field(
        None,
        gt=0,
        description=(
            "Events a second the webhook takes (a token bucket); more gets 429 with "
            "Retry-After. Empty: no limit."
        ),
    )
    rate_burst: int | None = Field(
        None, ge=1, description="Events the bucket holds at once; empty: maxBatchEvents."
    )
    auth: GatewayAuthSettings = Field(default_factory=GatewayAuthSettings)
    tls: GatewayTlsSettings | None = Field(None, description="Serve HTTPS with these files.")
    watch: WatchSettings = Field(default_factory=WatchSettings)

    @field_validator("auth")
    @classmethod
    def _credentials(cls, value: GatewayAuthSettings) -> GatewayAuthSettings:
        if value.basic is not None and ":" not in value.basic.get_secret_value():
            raise ValueError("basic is `user:password`: there is no `:` in it")
        return value

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/") or value.startswith("/api/"):
            raise ValueError("the path starts with `/` and is not under /api/ (the read API)")
        return value

    @field_validator("key")
    @classmethod
    def _key_attributes(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in KEY_ATTRIBUTES]
        if unknown:
            raise ValueError(f"not a key attribute: {', '.join(unknown)} (use {KEY_ATTRIBUTES})")
        return value

    @model_validator(mode="after")
    def _sizes(self) -> GatewaySettings:
        if self.max_event_size > self.max_request_size:
            raise ValueError("maxEventSize must not exceed maxRequestSize")
        return self
