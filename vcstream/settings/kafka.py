"""Where Kafka is and what the topics are called."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from vcstream.settings.base import ConfigModel, Secret


class SaslSettings(ConfigModel):
    mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    username: str
    password: Secret


class SslSettings(ConfigModel):
    ca_location: Path | None = None
    certificate_location: Path | None = None
    key_location: Path | None = None
    key_password: Secret | None = None


class KafkaSettings(ConfigModel):
    bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Comma-separated host:port list of Kafka brokers."
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl: SaslSettings | None = None
    ssl: SslSettings | None = None
    client_properties: dict[str, str] = Field(
        default_factory=dict,
        description="Extra librdkafka properties passed through to every client unchanged.",
    )


class TopicsSettings(ConfigModel):
    """Topic names, so one Kafka cluster can host several pipelines."""

    events: str = Field("vcenter.events", description="Raw vCenter events (long retention).")
    checkpoints: str = Field("vcstream.checkpoints", description="Producer position (compacted).")
    alarm_definitions: str = Field(
        "vcenter.alarm-definitions", description="Alarm definitions by vCenter+alarm (compacted)."
    )
    alarms: str = Field("vcenter.alarms", description="Enriched alarm events turning red/yellow.")
    audit: str = Field("vcenter.audit", description="Events selected for audit storage.")
    dead_letter: str = Field(
        "vcstream.dead-letter", description="Records a stage could not process, with error headers."
    )
