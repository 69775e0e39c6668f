"""Where Kafka is and what the topics are called."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

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
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        "lz4",
        description="How every producer compresses what it writes: the producer, the "
        "streams worker's outputs, dead letters (`compression.type` in `clientProperties` "
        "takes precedence).",
    )
    client_properties: dict[str, str] = Field(
        default_factory=dict,
        description="Extra librdkafka properties passed through to every client unchanged. "
        "The streams worker (Faust on aiokafka) translates those it has an equivalent for: "
        "`client.id`, `request.timeout.ms`, `max.poll.interval.ms`, "
        "`max.partition.fetch.bytes`, `metadata.max.age.ms`, `connections.max.idle.ms`, "
        "`message.max.bytes`, `compression.type`, `check.crcs`, `group.instance.id`, and "
        "the connection's `security.protocol`, `sasl.mechanism`, `sasl.username`, "
        "`sasl.password`, `ssl.ca.location`, `ssl.certificate.location`, "
        "`ssl.key.location`, `ssl.key.password`, `ssl.endpoint.identification.algorithm`, "
        "`enable.ssl.certificate.verification`. Any other property stops the worker at "
        "start with an error naming it, unless it only says what the worker does anyway "
        "(e.g. `acks: all`).",
    )

    @model_validator(mode="after")
    def _security_matches_protocol(self) -> KafkaSettings:
        # librdkafka ignores credentials its protocol does not use, so a forgotten
        # securityProtocol would connect without them; said here, before any connection
        protocol = self.client_properties.get("security.protocol", self.security_protocol)
        protocol = protocol.upper()
        if self.sasl is not None and not protocol.startswith("SASL_"):
            raise ValueError(
                f"sasl is set but securityProtocol is {protocol}: SASL_PLAINTEXT or SASL_SSL "
                "would use it"
            )
        sasl_elsewhere = any(key.startswith("sasl.") for key in self.client_properties)
        if protocol.startswith("SASL_") and self.sasl is None and not sasl_elsewhere:
            raise ValueError(f"securityProtocol {protocol} needs sasl (username, password)")
        if self.ssl is not None and protocol not in ("SSL", "SASL_SSL"):
            raise ValueError(
                f"ssl is set but securityProtocol is {protocol}: SSL or SASL_SSL would use it"
            )
        return self


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
