"""Where Kafka is and what the topics are called."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from vcstream.settings.base import ConfigModel, Secret


class SaslSettings(ConfigModel):
    mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "PLAIN", description="SASL mechanism."
    )
    username: str = Field(description="SASL user name.")
    password: Secret = Field(description="SASL password (a secret).")


class SslSettings(ConfigModel):
    ca_location: Path | None = Field(None, description="CA bundle to verify the brokers with.")
    certificate_location: Path | None = Field(None, description="Client certificate (mTLS).")
    key_location: Path | None = Field(None, description="Client private key (mTLS).")
    key_password: Secret | None = Field(None, description="Password of the private key.")


class KafkaSettings(ConfigModel):
    bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Comma-separated host:port list of Kafka brokers."
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How clients talk to the brokers."
    )
    sasl: SaslSettings | None = Field(None, description="SASL credentials, if the brokers ask.")
    ssl: SslSettings | None = Field(None, description="TLS files, for SSL and SASL_SSL.")
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
