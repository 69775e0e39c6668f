"""The streams worker gets every Kafka client setting the other roles get, translated for
Faust (aiokafka), and a property it cannot apply stops it with the property named."""

from __future__ import annotations

import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from faust.auth import SASLCredentials, SSLCredentials

from devenv.process import REPO
from streams.faust_kafka import WorkerPropertyError, faust_broker_options
from vcstream.settings.kafka import KafkaSettings

SASL = {"mechanism": "SCRAM-SHA-512", "username": "svc", "password": "secret"}


def options(**kafka: Any) -> dict[str, Any]:
    return faust_broker_options(KafkaSettings.model_validate(kafka))


def refused(**kafka: Any) -> list[str]:
    with pytest.raises(WorkerPropertyError) as raised:
        options(**kafka)
    return str(raised.value).splitlines()


def test_plaintext_brokers_without_credentials() -> None:
    assert options(bootstrapServers="a:9092, b:9093") == {
        "broker": "kafka://a:9092;kafka://b:9093",
        "producer_compression_type": "lz4",  # kafka.compression's default
    }


def test_sasl_plaintext_logs_in_without_tls() -> None:
    credentials = options(securityProtocol="SASL_PLAINTEXT", sasl=SASL)["broker_credentials"]
    assert isinstance(credentials, SASLCredentials)
    assert (credentials.username, credentials.password) == ("svc", "secret")
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert credentials.protocol.value == "SASL_PLAINTEXT" and credentials.ssl_context is None


def test_sasl_ssl_logs_in_over_a_verifying_tls_context() -> None:
    credentials = options(securityProtocol="SASL_SSL", sasl=SASL)["broker_credentials"]
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert credentials.ssl_context.check_hostname


def test_ssl_verification_properties_reach_the_tls_context() -> None:
    credentials = options(
        securityProtocol="SSL",
        clientProperties={
            "ssl.ca.location": "probe",
            "enable.ssl.certificate.verification": "false",
        },
    )["broker_credentials"]
    assert isinstance(credentials, SSLCredentials)
    assert credentials.context.verify_mode == ssl.CERT_NONE
    no_hostname = options(
        securityProtocol="SSL", clientProperties={"ssl.endpoint.identification.algorithm": "none"}
    )["broker_credentials"]
    assert not no_hostname.context.check_hostname
    assert no_hostname.context.verify_mode == ssl.CERT_REQUIRED


def test_client_properties_win_over_the_typed_settings_as_in_librdkafka() -> None:
    credentials = options(
        securityProtocol="SASL_PLAINTEXT",
        sasl=SASL,
        clientProperties={"sasl.mechanisms": "PLAIN", "sasl.password": "rotated"},
    )["broker_credentials"]
    assert credentials.mechanism.value == "PLAIN" and credentials.password == "rotated"


def test_properties_with_an_equivalent_become_faust_settings() -> None:
    properties = {
        "client.id": "vcstream-worker",
        "request.timeout.ms": "30000",
        "max.poll.interval.ms": "600000",
        "max.partition.fetch.bytes": "2097152",
        "metadata.max.age.ms": "60000",
        "connections.max.idle.ms": "120000",
        "message.max.bytes": "2000000",
        "compression.codec": "ZSTD",  # librdkafka's alias of compression.type
        "check.crcs": "false",
        "group.instance.id": "worker-0",
        # what the worker does anyway
        "acks": "all",
        "isolation.level": "read_committed",
        "enable.auto.commit": "false",
        "auto.offset.reset": "earliest",
    }
    got = options(clientProperties=properties)
    del got["broker"]
    assert got == {
        "broker_client_id": "vcstream-worker",
        "producer_request_timeout": 30.0,
        "broker_max_poll_interval": 600.0,
        "consumer_max_fetch_size": 2097152,
        "consumer_metadata_max_age_ms": 60000,
        "producer_metadata_max_age_ms": 60000,
        "consumer_connections_max_idle_ms": 120000,
        "producer_connections_max_idle_ms": 120000,
        "producer_max_request_size": 2000000,
        "producer_compression_type": "zstd",
        "broker_check_crcs": False,
        "consumer_group_instance_id": "worker-0",
    }
    uncompressed = options(clientProperties={"compression.type": "none"})
    assert uncompressed["producer_compression_type"] is None


def test_every_property_the_worker_cannot_apply_is_named() -> None:
    problems = refused(
        clientProperties={
            "client.id": "fine",
            "debug": "all",
            "session.timeout.ms": "6000",
            "acks": "1",
            "linger.ms": "5",
            "compression.codec": "brotli",  # named as written, not as its canonical alias
            "connections.max.idle.ms": "0",
            "max.poll.interval.ms": "soon",
        }
    )
    assert [line.split(":")[0] for line in problems] == [
        "kafka.clientProperties.debug",
        "kafka.clientProperties.session.timeout.ms",
        "kafka.clientProperties.acks",
        "kafka.clientProperties.linger.ms",
        "kafka.clientProperties.compression.codec",
        "kafka.clientProperties.connections.max.idle.ms",
        "kafka.clientProperties.max.poll.interval.ms",
    ]
    assert "no equivalent" in problems[0] and "client.id" in problems[0]
    assert "streams.sessionTimeout" in problems[1]
    assert "acks=all" in problems[2]


def test_a_mechanism_aiokafka_cannot_log_in_with_is_named() -> None:
    [problem] = refused(
        securityProtocol="SASL_PLAINTEXT",
        clientProperties={"sasl.mechanism": "GSSAPI", "sasl.kerberos.service.name": "kafka"},
    )[:1]
    assert problem.startswith("kafka.clientProperties.sasl.mechanism: GSSAPI")


def test_the_worker_exits_2_naming_the_property_before_connecting(tmp_path: Path) -> None:
    config = tmp_path / "vcstream.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                # nothing listens here: the refusal comes before any connection
                "kafka": {"bootstrapServers": "127.0.0.1:1", "clientProperties": {"debug": "all"}},
                "metrics": {"enabled": False},
            }
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "cli", "streams", "worker", "--config", str(config)],
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "configuration error: kafka.clientProperties.debug:" in result.stderr
