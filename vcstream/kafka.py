"""One place that turns KafkaSettings into client configuration, and creates topics.

Every component builds its clients here, so security settings (SASL/SSL) are written
once and a librdkafka property set in `kafka.clientProperties` reaches every client.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from vcstream.settings.kafka import KafkaSettings

log = logging.getLogger(__name__)


def client_config(kafka: KafkaSettings, **overrides: Any) -> dict[str, Any]:
    """librdkafka configuration for a confluent-kafka Producer, Consumer or AdminClient."""
    config: dict[str, Any] = {
        "bootstrap.servers": kafka.bootstrap_servers,
        "security.protocol": kafka.security_protocol,
    }
    if kafka.sasl is not None:
        config["sasl.mechanism"] = kafka.sasl.mechanism
        config["sasl.username"] = kafka.sasl.username
        config["sasl.password"] = kafka.sasl.password.get_secret_value()
    if kafka.ssl is not None:
        for key, value in (
            ("ssl.ca.location", kafka.ssl.ca_location),
            ("ssl.certificate.location", kafka.ssl.certificate_location),
            ("ssl.key.location", kafka.ssl.key_location),
        ):
            if value is not None:
                config[key] = str(value)
        if kafka.ssl.key_password is not None:
            config["ssl.key.password"] = kafka.ssl.key_password.get_secret_value()
    config.update(kafka.client_properties)
    config.update(overrides)
    return config


def faust_broker_options(kafka: KafkaSettings) -> dict[str, Any]:
    """The same connection for Faust (aiokafka): broker URLs plus credentials."""
    import ssl

    from faust.auth import SASLCredentials, SSLCredentials

    brokers = ";".join(f"kafka://{server.strip()}" for server in kafka.bootstrap_servers.split(","))
    options: dict[str, Any] = {"broker": brokers}
    context = None
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(
            cafile=str(kafka.ssl.ca_location) if kafka.ssl and kafka.ssl.ca_location else None
        )
        if kafka.ssl and kafka.ssl.certificate_location and kafka.ssl.key_location:
            context.load_cert_chain(
                str(kafka.ssl.certificate_location),
                str(kafka.ssl.key_location),
                kafka.ssl.key_password.get_secret_value() if kafka.ssl.key_password else None,
            )
    if kafka.sasl is not None:
        options["broker_credentials"] = SASLCredentials(
            username=kafka.sasl.username,
            password=kafka.sasl.password.get_secret_value(),
            mechanism=kafka.sasl.mechanism,
            ssl_context=context,
        )
    elif context is not None:
        options["broker_credentials"] = SSLCredentials(context)
    return options


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = 1
    replication_factor: int = 1
    compacted: bool = False
    retention: timedelta | int | None = None  # -1: forever; None: broker default
    extra: dict[str, str] = field(default_factory=dict)

    def new_topic(self) -> NewTopic:
        config = dict(self.extra)
        if self.compacted:
            config["cleanup.policy"] = "compact"
        if self.retention == -1:
            config["retention.ms"] = "-1"
        elif isinstance(self.retention, timedelta):
            config["retention.ms"] = str(int(self.retention.total_seconds() * 1000))
        return NewTopic(
            self.name,
            num_partitions=self.partitions,
            replication_factor=self.replication_factor,
            config=config,
        )


def ensure_topics(kafka: KafkaSettings, specs: Iterable[TopicSpec], timeout: float = 30) -> None:
    """Create the topics that do not exist; leave existing ones as they are."""
    admin = AdminClient(client_config(kafka))
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [spec.new_topic() for spec in specs if spec.name not in existing]
    if not wanted:
        return
    for name, future in admin.create_topics(wanted, request_timeout=timeout).items():
        try:
            future.result()
            log.info("created topic %s", name)
        except KafkaException as exc:
            if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise
