"""The sink connectors: one section per connector, sharing delivery and batching keys.

Delivery keys carry Knative's DeliverySpec names and defaults (`retry: 10`,
`backoffPolicy: exponential`, `backoffDelay: PT0.2S`), so a Knative user reads them
without a manual.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from vcstream.settings.base import ConfigModel, Duration, Secret


class DeliverySettings(ConfigModel):
    """Retries and dead letters, as in Knative's DeliverySpec."""

    retry: int = Field(
        10, ge=0, description="Retries after the first attempt before a record is dead-lettered."
    )
    backoff_policy: Literal["exponential", "linear"] = Field(
        "exponential",
        description="exponential: backoffDelay*2^n before retry n; linear: backoffDelay*n.",
    )
    backoff_delay: Duration = Field(
        timedelta(seconds=0.2), description="Base delay between retries (ISO 8601, e.g. PT0.2S)."
    )
    timeout: Duration = Field(
        timedelta(seconds=30), description="How long one delivery attempt may take."
    )
    retry_after_max: Duration = Field(
        timedelta(seconds=60),
        description="Cap on a target's Retry-After; a longer wait is cut to this.",
    )
    dead_letter_topic: str | None = Field(
        None, description="Dead-letter topic; default: topics.deadLetter."
    )

    @field_validator("timeout", "backoff_delay")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than zero")
        return value


class BatchSettings(ConfigModel):
    """How records are grouped per partition, and how much work may wait in memory."""

    max_records: int = Field(100, ge=1, description="Most records delivered in one batch.")
    max_wait: Duration = Field(
        timedelta(0),
        description="How long a partition's batch may wait to fill up before it is delivered.",
    )
    max_in_flight: int = Field(
        4, ge=1, description="Batches (one per partition at most) being delivered at once."
    )
    max_buffered: int = Field(
        1000,
        ge=1,
        description="Records held per partition before that partition is paused (backpressure).",
    )


class SinkCommonSettings(ConfigModel):
    """Keys every connector has."""

    topics: list[str] | None = Field(
        None, description="Topics to read; default depends on the sink (see each sink)."
    )
    group_id: str | None = Field(
        None, description="Consumer group; default `vcstream-sink-<sink>`."
    )
    types: list[str] = Field(
        default_factory=lambda: ["*"],
        description="Glob patterns on the CloudEvent `type`; other events are skipped.",
    )
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)

    @field_validator("batch", mode="before")
    @classmethod
    def _batch_over_sink_defaults(cls, value: Any) -> Any:
        """A `batch` section changes only the keys it names: the rest keep this sink's
        defaults (the audit sink's `maxRecords: 2000`), not the generic ones. Without
        this, `batch: {maxInFlight: 6}` gave the audit sink batches of 100 delivered at
        once (`maxWait` 0), and bench.audit measured that."""
        if not isinstance(value, dict):
            return value
        default = cls.model_fields["batch"].get_default(call_default_factory=True)
        return {**default.model_dump(by_alias=True), **value}


class AuthHeader(ConfigModel):
    name: str = Field("Authorization", description="HTTP header carrying the credential.")
    value: Secret = Field(description="Header value, e.g. `Bearer <token>` (a secret).")


def _knative_batch() -> BatchSettings:
    # Pausing a partition makes librdkafka drop what it prefetched for it (up to
    # `sinks.runtime.BOUNDED_FETCH`, 4 MB: thousands of records) and fetch it again on
    # resume. At 1,000 buffered the sink paused and resumed after every few batches and
    # had nothing in flight most of the time: 6,500-8,700 events/s against 12,300-14,100
    # at 4,000 (bench.knative's sink phase, the same run's receiver and load)
    return BatchSettings(maxBuffered=4000)


class KnativeSinkSettings(SinkCommonSettings):
    """CloudEvents over HTTP to a Knative Broker (default topics: topics.events, topics.alarms)."""

    url: str = Field(description="Broker ingress URL, e.g. http://broker-ingress/ns/default.")
    content_mode: Literal["binary", "structured"] = Field(
        "binary", description="CloudEvents HTTP content mode."
    )
    type_format: Literal["vsphere", "event-router"] = Field(
        "vsphere",
        description="event-router: VEBA v0.7 types (com.vmware.event.router/event) + subject; "
        "Horizon events as com.vmware.event.router/horizon.<type>.v0.",
    )
    auth: AuthHeader | None = Field(None, description="Optional auth header from a secret.")
    concurrency: int = Field(16, ge=1, description="HTTP requests in flight at once.")
    batch: BatchSettings = Field(default_factory=_knative_batch)
    proxy: str | None = Field(
        None,
        description="HTTP proxy to reach the Broker through, e.g. `http://proxy:3128`; "
        "`direct` for none. Unset: `HTTPS_PROXY` / `HTTP_PROXY` unless `NO_PROXY` names the "
        "host.",
    )

    @field_validator("proxy")
    @classmethod
    def _proxy(cls, value: str | None) -> str | None:
        from vcstream.proxy import DIRECT, parse_proxy

        if value is not None and value != DIRECT:
            parse_proxy(value)
        return value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return value


class StormSettings(ConfigModel):
    threshold: int = Field(
        10, ge=1, description="More alarms than this within `window` become one digest."
    )
    window: Duration = Field(timedelta(minutes=1), description="The storm-detection window.")


def _slack_batch() -> BatchSettings:
    # alarms of one storm gather into one batch, which becomes one digest
    return BatchSettings(maxRecords=500, maxWait=timedelta(seconds=1))


class SlackSinkSettings(SinkCommonSettings):
    """Alarm messages through a Slack incoming webhook (default topics: topics.alarms)."""

    webhook_url: Secret = Field(description="Incoming webhook URL (a secret).")
    proxy: str | None = Field(
        None,
        description="HTTP proxy to reach Slack through, e.g. `http://proxy:3128`; `direct` "
        "for none. Unset: `HTTPS_PROXY` / `HTTP_PROXY` unless `NO_PROXY` names the host.",
    )
    min_interval: Duration = Field(
        timedelta(seconds=1), description="At least this long between two messages (Slack: 1/s)."
    )
    storm: StormSettings = Field(default_factory=StormSettings)
    batch: BatchSettings = Field(default_factory=_slack_batch)

    @field_validator("proxy")
    @classmethod
    def _proxy(cls, value: str | None) -> str | None:
        from vcstream.proxy import DIRECT, parse_proxy

        if value is not None and value != DIRECT:
            parse_proxy(value)
        return value


class AuditFilesSettings(ConfigModel):
    """Files rotate as in Kafka Connect's storage sinks: a partition's open file is closed
    (fsync, rename, seal) at whichever limit comes first, and only then committed."""

    directory: Path = Field(
        Path(".cache/audit"), description="Root of the Avro files (date=/vcenter= folders)."
    )
    rotate_records: int = Field(
        100_000, ge=1, description="Close a partition's file once it holds this many records."
    )
    rotate_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024,
        description="Close a partition's file once it is this large (compressed bytes).",
    )
    rotate_interval: Duration = Field(
        timedelta(minutes=10),
        description="Close a partition's file this long after it was opened, even if small; "
        "records are committed to Kafka only once their file is closed.",
    )
    codec: Literal["snappy", "deflate", "null"] = Field(
        "snappy",
        description="Avro block compression (Kafka Connect's avro.codec): snappy writes about "
        "a third faster than deflate, deflate files are about 40% smaller.",
    )
    seal_directory: Path | None = Field(
        None,
        description="Where each closed file's chain head is sealed (default: <directory>/_seals); "
        "other storage keeps a deleted newest file detectable by whoever edits the files.",
    )

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: object) -> object:
        if isinstance(data, dict) and "maxFileBytes" in data:
            raise ValueError("files.maxFileBytes is now files.rotateBytes")
        return data

    @field_validator("rotate_interval")
    @classmethod
    def _positive_interval(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than zero")
        return value


class AuditPostgresSettings(ConfigModel):
    dsn: Secret = Field(description="postgresql://user:password@host:port/db (a secret).")
    table: str = Field("vcstream_audit", pattern=r"^[a-z_][a-z0-9_]*$", description="Table name.")


def _audit_batch() -> BatchSettings:
    # batches append to a partition's open file; files rotate by `files.rotate*`. A
    # partition pauses at maxBuffered, so a batch never holds more: twice maxRecords
    # keeps the next batch read while one is written (5,000 over 1,000 waited out maxWait)
    return BatchSettings(maxRecords=2000, maxBuffered=4000, maxWait=timedelta(seconds=1))


class AuditSinkSettings(SinkCommonSettings):
    """Append-only, tamper-evident storage (default topics: topics.audit).

    The files backend commits a partition's offsets when its file rotates
    (`files.rotateRecords`, `files.rotateBytes`, `files.rotateInterval`); PostgreSQL
    after every batch.
    """

    backend: Literal["files", "postgres"] = Field("files", description="Where records go.")
    files: AuditFilesSettings = Field(default_factory=AuditFilesSettings)
    postgres: AuditPostgresSettings | None = Field(None, description="Required for postgres.")
    batch: BatchSettings = Field(default_factory=_audit_batch)

    @model_validator(mode="after")
    def _backend_configured(self) -> AuditSinkSettings:
        if self.backend == "postgres" and self.postgres is None:
            raise ValueError("backend postgres needs a `postgres` section with a dsn")
        return self


class SinksSettings(ConfigModel):
    knative: KnativeSinkSettings | None = Field(None, description="The Knative Broker sink.")
    slack: SlackSinkSettings | None = Field(None, description="The Slack webhook sink.")
    audit: AuditSinkSettings = Field(
        default_factory=AuditSinkSettings, description="The audit storage sink."
    )
