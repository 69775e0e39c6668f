"""The streams worker's connection: the same Kafka settings translated for Faust (aiokafka).

A property set in `kafka.clientProperties` reaches the worker as a Faust setting, or is
an error naming it rather than a setting silently lost. Faust cannot tell a refused
login from a broker that is down, so `check_faust_login` asks once before it starts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vcstream.kafka import (
    canonical_properties,
    librdkafka_properties,
    login_rejected,
)
from vcstream.settings.kafka import KafkaSettings

if TYPE_CHECKING:
    import ssl

log = logging.getLogger(__name__)


class WorkerPropertyError(ValueError):
    """Kafka client properties the streams worker cannot apply; one line names each."""


# what the credentials and the TLS context are made of
_CONNECTION = {
    "bootstrap.servers",
    "security.protocol",
    "sasl.mechanism",
    "sasl.username",
    "sasl.password",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.key.password",
    "ssl.endpoint.identification.algorithm",
    "enable.ssl.certificate.verification",
}
_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")  # what aiokafka logs in with


def _seconds(value: str) -> float:
    return _count(value) / 1000


def _count(value: str) -> int:
    if not value.strip().isdigit():
        raise ValueError("expected a whole number, 0 or more")
    return int(value)


def _idle_ms(value: str) -> int:
    if _count(value) == 0:  # librdkafka: never close; aiokafka has no such value
        raise ValueError("0 (never close an idle connection) has no aiokafka equivalent")
    return int(value)


def _boolean(value: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise ValueError("expected true or false")
    return value.lower() == "true"


def _compression(value: str) -> str | None:
    codec = value.lower()
    if codec not in ("none", "gzip", "snappy", "lz4", "zstd"):
        raise ValueError("expected none, gzip, snappy, lz4 or zstd")
    return None if codec == "none" else codec


# librdkafka property -> the Faust settings with the same meaning, and the conversion
_FAUST_SETTINGS: dict[str, tuple[tuple[str, ...], Callable[[str], Any]]] = {
    "client.id": (("broker_client_id",), str),
    # aiokafka's producer request timeout also expires batches (librdkafka's
    # message.timeout.ms): a send not acknowledged within it fails and stops the worker
    "request.timeout.ms": (("producer_request_timeout",), _seconds),
    "max.poll.interval.ms": (("broker_max_poll_interval",), _seconds),
    "max.partition.fetch.bytes": (("consumer_max_fetch_size",), _count),
    "metadata.max.age.ms": (
        ("consumer_metadata_max_age_ms", "producer_metadata_max_age_ms"),
        _count,
    ),
    "connections.max.idle.ms": (
        ("consumer_connections_max_idle_ms", "producer_connections_max_idle_ms"),
        _idle_ms,
    ),
    "message.max.bytes": (("producer_max_request_size",), _count),
    "compression.type": (("producer_compression_type",), _compression),
    "check.crcs": (("broker_check_crcs",), _boolean),
    "group.instance.id": (("consumer_group_instance_id",), str),
}
# Properties the worker decides from its own settings or its delivery guarantee: a value
# that agrees is what the worker does anyway, any other is refused with what decides it.
_WORKER_DECIDES: dict[str, tuple[frozenset[str], str]] = {
    "group.id": (frozenset(), "its consumer group is streams.appId"),
    "session.timeout.ms": (frozenset(), "its session timeout is streams.sessionTimeout"),
    "heartbeat.interval.ms": (frozenset(), "its heartbeats follow streams.sessionTimeout"),
    "socket.timeout.ms": (
        frozenset(),
        "aiokafka's request timeout also bounds group joins, so it keeps Faust's",
    ),
    "auto.commit.interval.ms": (frozenset(), "it commits every streams.commitInterval"),
    "enable.auto.commit": (
        frozenset({"false"}),
        "it commits an offset once the outputs of its event are written",
    ),
    "auto.offset.reset": (
        frozenset({"earliest", "smallest", "beginning"}),
        "it reads a new group from the earliest offset",
    ),
    "isolation.level": (frozenset({"read_committed"}), "it reads committed records only"),
    "acks": (frozenset({"all", "-1"}), "it writes with acks=all (at least once)"),
    **dict.fromkeys(
        ("linger.ms", "batch.size", "batch.num.messages"),
        (frozenset(), "it sets its own producer batching"),
    ),
}


def faust_broker_options(kafka: KafkaSettings) -> dict[str, Any]:
    """What faust.App needs to connect as every other role does: the broker URLs, the
    credentials (SASL/TLS), and each client property translated into its Faust setting.

    Raises WorkerPropertyError naming every property the worker cannot apply.
    """
    written = canonical_properties(librdkafka_properties(kafka))
    config = {key: value for key, (_, value) in written.items()}
    problems: list[str] = []
    options: dict[str, Any] = {"broker": _faust_brokers(config["bootstrap.servers"])}
    credentials = _faust_credentials(kafka, config, problems)
    if credentials is not None:
        options["broker_credentials"] = credentials
    for key, (name, value) in written.items():
        where = f"kafka.clientProperties.{name}"
        if key in _CONNECTION:
            continue
        if key in _FAUST_SETTINGS:
            names, convert = _FAUST_SETTINGS[key]
            try:
                converted = convert(value)
            except ValueError as exc:
                problems.append(f"{where}: {value!r}: {exc}")
                continue
            options.update(dict.fromkeys(names, converted))
        elif key in _WORKER_DECIDES:
            agrees, decided_by = _WORKER_DECIDES[key]
            if value.lower() not in agrees:
                problems.append(f"{where}: the streams worker does not take it: {decided_by}")
        else:
            problems.append(
                f"{where}: the streams worker (Faust, aiokafka) has no equivalent of this "
                f"librdkafka property; it takes {', '.join(sorted(_FAUST_SETTINGS))}"
            )
    if problems:
        raise WorkerPropertyError("\n".join(problems))
    options.setdefault("producer_compression_type", _compression(kafka.compression))
    return options


def _faust_brokers(bootstrap_servers: str) -> str:
    servers = (server.strip() for server in bootstrap_servers.split(","))
    return ";".join(f"kafka://{server}" for server in servers if server)


def _faust_credentials(kafka: KafkaSettings, config: dict[str, str], problems: list[str]) -> Any:
    from faust.auth import SASLCredentials, SSLCredentials

    protocol = config["security.protocol"].upper()
    context = _ssl_context(config) if protocol in ("SSL", "SASL_SSL") else None
    if protocol not in ("SASL_PLAINTEXT", "SASL_SSL"):
        return SSLCredentials(context) if context is not None else None
    mechanism = config.get("sasl.mechanism", "GSSAPI").upper()  # librdkafka's default
    if mechanism not in _SASL_MECHANISMS:
        where = (
            "kafka.clientProperties.sasl.mechanism"
            if kafka.sasl is None or "sasl.mechanism" in kafka.client_properties
            else "kafka.sasl.mechanism"
        )
        problems.append(
            f"{where}: {mechanism}: the streams worker logs in with "
            f"{', '.join(_SASL_MECHANISMS)} only"
        )
        return None
    if not config.get("sasl.username") or not config.get("sasl.password"):
        problems.append(f"kafka.sasl: {protocol} needs a user name and a password")
        return None
    return SASLCredentials(
        username=config.get("sasl.username"),
        password=config.get("sasl.password"),
        mechanism=mechanism,
        ssl_context=context,  # none: SASL_PLAINTEXT; aiokafka wants a context for SASL_SSL
    )


def _ssl_context(config: dict[str, str]) -> ssl.SSLContext:
    import ssl

    ca = config.get("ssl.ca.location")
    context = ssl.create_default_context(cafile=None if ca in (None, "probe") else ca)
    certificate, key = config.get("ssl.certificate.location"), config.get("ssl.key.location")
    if certificate and key:
        context.load_cert_chain(certificate, key, config.get("ssl.key.password"))
    if config.get("ssl.endpoint.identification.algorithm", "https").lower() == "none":
        context.check_hostname = False
    if config.get("enable.ssl.certificate.verification", "true").lower() == "false":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def check_faust_login(kafka: KafkaSettings, timeout: float = 10) -> None:
    """Raise KafkaLoginRejected if the brokers refuse the worker's SASL login (and
    WorkerPropertyError, before connecting, if faust_broker_options would).

    Faust logs aiokafka's refusal and then fails with "Unable to bootstrap", as for a
    broker that is down; one connection made first, with the same credentials, tells the
    two apart. Unreachable brokers pass: the worker's own start reports them.
    """
    options = faust_broker_options(kafka)
    if "broker_credentials" not in options:
        return
    loop = asyncio.new_event_loop()  # not the current loop: Faust's is made later
    try:
        loop.run_until_complete(_try_login(kafka, options, timeout))
    finally:
        loop.close()


async def _try_login(kafka: KafkaSettings, options: dict[str, Any], timeout: float) -> None:
    from aiokafka.conn import create_conn
    from aiokafka.errors import KafkaError as AIOKafkaError
    from aiokafka.errors import SaslAuthenticationFailed, UnsupportedSaslMechanismError
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    auth = credentials_to_aiokafka_auth(options["broker_credentials"])
    for url in options["broker"].split(";"):
        host, _, port = url.removeprefix("kafka://").rpartition(":")
        try:
            connection = await asyncio.wait_for(
                create_conn(
                    host, int(port or 9092), request_timeout_ms=int(timeout * 1000), **auth
                ),
                timeout,
            )
        except (SaslAuthenticationFailed, UnsupportedSaslMechanismError) as exc:
            raise login_rejected(kafka, str(exc)) from None
        except (OSError, TimeoutError, AIOKafkaError):
            continue  # this broker is unreachable: try the next
        connection.close()
        return
