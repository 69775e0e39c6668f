"""One place that turns KafkaSettings into client configuration, and creates topics.

Every component builds its clients here, so security settings (SASL/SSL) are written
once and a property set in `kafka.clientProperties` reaches every client: librdkafka's
unchanged (`client_config`), the Faust worker's translated into Faust settings
(`streams.faust_kafka`). A SASL login the brokers refuse is an error naming
the settings to check (`KafkaLoginRejected`), where librdkafka alone would retry forever.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, ClusterMetadata, NewTopic

from vcstream.logging import KAFKA_LOGGER
from vcstream.settings.kafka import KafkaSettings

log = logging.getLogger(__name__)


class KafkaLoginRejected(Exception):
    """The brokers refused the SASL login: a configuration problem, so never retried."""


def librdkafka_properties(kafka: KafkaSettings) -> dict[str, str]:
    """The settings as librdkafka properties, `clientProperties` last (they win)."""
    config: dict[str, str] = {
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
    return config


def client_config(kafka: KafkaSettings, **overrides: Any) -> dict[str, Any]:
    """librdkafka configuration for a confluent-kafka Producer, Consumer or AdminClient.

    A refused login raises KafkaLoginRejected from the call that serves the client's
    callbacks (poll, consume, flush); an `error_cb` among the overrides still sees every
    error first.

    librdkafka's own log lines go to the `librdkafka` Python logger (served by the same
    calls), so they take the configured format, pass the redacting formatter and are
    rate-limited when a broker is down; without it librdkafka writes raw `%3|...` lines to
    stderr.
    """
    config: dict[str, Any] = dict(librdkafka_properties(kafka))
    config["logger"] = logging.getLogger(KAFKA_LOGGER)
    config["error_cb"] = _refuse_rejected_login(kafka, overrides.pop("error_cb", None))
    config.update(overrides)
    return config


def producer_config(kafka: KafkaSettings, **overrides: Any) -> dict[str, Any]:
    """`client_config` for a producer: compressed with `kafka.compression` unless the
    client properties name a codec (only producers take the property: a consumer given
    it logs a warning)."""
    config = client_config(kafka, **overrides)
    if "compression.type" not in config and "compression.codec" not in config:
        config["compression.type"] = kafka.compression
    return config


# librdkafka's words for a SaslHandshake request that failed on this side (the connection
# closed or timed out before the broker answered), which it too reports as _AUTHENTICATION;
# a broker that refuses the mechanism says "...handshake failed: Broker: ..." instead.
# librdkafka's text, not its API: tests/core/test_kafka_login.py drops a real handshake
# and fails if the installed release words it otherwise.
HANDSHAKE_LOST = "mechanism handshake failed: Local: "


def refused_login(error: KafkaError) -> bool:
    """Whether the brokers refused the login: not a connection lost during it, which a
    broker restart or a network blip makes and librdkafka retries like any other."""
    return error.code() == KafkaError._AUTHENTICATION and HANDSHAKE_LOST not in error.str()


def _refuse_rejected_login(
    kafka: KafkaSettings, then: Callable[[KafkaError], None] | None
) -> Callable[[KafkaError], None]:
    def on_error(error: KafkaError) -> None:
        if then is not None:
            then(error)
        # librdkafka retries a refused login forever and tells only this callback; an
        # exception raised here leaves the client call that served it
        if refused_login(error):
            raise login_rejected(kafka, error.str())

    return on_error


def login_rejected(kafka: KafkaSettings, detail: str) -> KafkaLoginRejected:
    """The error for a refused login, naming the settings the credentials came from."""
    config = {
        key: value for key, (_, value) in canonical_properties(librdkafka_properties(kafka)).items()
    }

    def setting(key: str, typed: str) -> str:
        return f"kafka.clientProperties.{key}" if key in kafka.client_properties else typed

    password = setting("sasl.password", "kafka.sasl.password")
    username = setting("sasl.username", "kafka.sasl.username")
    mechanism = config.get("sasl.mechanism", "GSSAPI")  # librdkafka's default
    return KafkaLoginRejected(
        f"{password}: Kafka at {config['bootstrap.servers']} refused the {mechanism} login "
        f"of user {config.get('sasl.username', '')!r}; check {password} and {username} "
        f"(Kafka: {detail})"
    )


def list_topics(
    client: AdminClient | Producer, timeout: float, topic: str | None = None
) -> ClusterMetadata:
    """Cluster metadata, or KafkaLoginRejected as soon as the brokers refuse the login.

    A blocking metadata request serves no callback, so asked in one piece, a wrong
    password looked like `timeout` seconds of "transport failure"; short requests with
    the error callback served in between end it within a second.
    """
    deadline = time.monotonic() + timeout
    while True:
        step = min(1.0, max(0.0, deadline - time.monotonic()))
        try:
            return client.list_topics(topic=topic, timeout=step)
        except KafkaException:
            try:
                client.poll(0)  # a client made by client_config raises a refused login here
            except KafkaLoginRejected as rejected:
                raise unleaked(rejected) from None
            if time.monotonic() >= deadline:
                raise


def unleaked(rejected: KafkaLoginRejected) -> KafkaLoginRejected:
    """A copy of an error raised in a client's callback that holds no frame.

    confluent-kafka 2.16 keeps a reference to an exception raised in a callback for
    good; through its traceback and context that kept the caller's frames alive, and
    with them the client, whose threads then retried the refused login for the life of
    the process (tests/core/test_kafka_login.py checks the client is let go).
    """
    rejected.__traceback__ = None
    rejected.__context__ = None
    return KafkaLoginRejected(*rejected.args)


# librdkafka's other names for the same property
_ALIASES = {
    "metadata.broker.list": "bootstrap.servers",
    "sasl.mechanisms": "sasl.mechanism",
    "compression.codec": "compression.type",
    "request.required.acks": "acks",
    "queue.buffering.max.ms": "linger.ms",
    "delivery.timeout.ms": "message.timeout.ms",
}


def canonical_properties(properties: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Each property under its canonical name: (the name as written, its value)."""
    config: dict[str, tuple[str, str]] = {}
    for key, value in properties.items():
        config[_ALIASES.get(key, key)] = (key, value)  # the later wins, as in librdkafka
    return config


# A compacted topic keeps its newest record per key only in segments that are closed:
# Kafka never cleans the active one, which by default closes at 1 GB or after 7 days.
# The producer commits a checkpoint (and a transaction marker) per transaction, tens a
# second under load: with the defaults vcstream.checkpoints grew 36 MB an hour. Segments
# that close within minutes let the cleaner keep it near one segment; the markers and
# tombstones it leaves are kept an hour (long enough for any reader to finish the topic).
COMPACTED_TOPIC_CONFIG = {
    "segment.bytes": str(8 * 1024 * 1024),
    "segment.ms": str(10 * 60 * 1000),
    "delete.retention.ms": str(60 * 60 * 1000),
}


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = 1
    replication_factor: int = 1
    compacted: bool = False
    retention: timedelta | int | None = None  # -1: forever; None: broker default
    extra: dict[str, str] = field(default_factory=dict)

    def new_topic(self) -> NewTopic:
        config: dict[str, str] = {}
        if self.compacted:
            config.update(COMPACTED_TOPIC_CONFIG)
            config["cleanup.policy"] = "compact"
        if self.retention == -1:
            config["retention.ms"] = "-1"
        elif isinstance(self.retention, timedelta):
            config["retention.ms"] = str(int(self.retention.total_seconds() * 1000))
        config.update(self.extra)
        return NewTopic(
            self.name,
            num_partitions=self.partitions,
            replication_factor=self.replication_factor,
            config=config,
        )


def ensure_topics(kafka: KafkaSettings, specs: Iterable[TopicSpec], timeout: float = 30) -> None:
    """Create the topics that do not exist; leave existing ones as they are."""
    admin = AdminClient(client_config(kafka))
    existing = set(list_topics(admin, timeout).topics)
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
