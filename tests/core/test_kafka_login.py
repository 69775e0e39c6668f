"""A SASL login the brokers refuse is an error naming the settings to check, for librdkafka
clients and the worker's aiokafka alike, instead of retries without end; a connection lost
during the login is retried, as any other."""

from __future__ import annotations

import gc
import socket
import struct
import sys
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError
from confluent_kafka.admin import AdminClient

from devenv import LocalKafka
from devenv.process import free_port, wait_until
from streams.faust_kafka import check_faust_login
from vcstream.kafka import HANDSHAKE_LOST, KafkaLoginRejected, client_config, list_topics
from vcstream.settings.kafka import KafkaSettings

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def free_refused_clients() -> Iterator[None]:
    # A client whose login was refused retries for as long as it exists, logging each
    # refusal; the error's traceback (kept by pytest.raises) holds it in a reference
    # cycle, which only the cycle collector frees. Free it before the next test.
    yield
    gc.collect()


def settings(broker: LocalKafka, password: str | None = None, **kafka: Any) -> KafkaSettings:
    assert broker.sasl is not None
    return KafkaSettings.model_validate(
        {
            "bootstrapServers": broker.sasl_bootstrap_servers,
            "securityProtocol": "SASL_PLAINTEXT",
            "sasl": {
                "mechanism": broker.sasl.mechanism,
                "username": broker.sasl.username,
                "password": password or broker.sasl.password,
            },
            **kafka,
        }
    )


def test_the_right_password_logs_in(sasl_kafka: LocalKafka) -> None:
    admin = AdminClient(client_config(settings(sasl_kafka)))
    assert list_topics(admin, timeout=30).brokers
    check_faust_login(settings(sasl_kafka))


def test_metadata_request_with_a_wrong_password_names_the_password_setting(
    sasl_kafka: LocalKafka,
) -> None:
    admin = AdminClient(client_config(settings(sasl_kafka, "wrong")))
    references = sys.getrefcount(admin)
    try:
        list_topics(admin, timeout=60)
    except KafkaLoginRejected as rejected:
        message = str(rejected)
    else:
        pytest.fail("a wrong password was let in")
    # once the error is handled, nothing keeps the client (and its retrying threads) alive
    assert sys.getrefcount(admin) == references
    assert message.startswith(f"kafka.sasl.password: Kafka at {sasl_kafka.sasl_bootstrap_servers}")
    assert "SCRAM-SHA-256 login of user 'vcstream'" in message
    assert "wrong" not in message  # the password itself is never in the message


def test_consumer_with_a_wrong_password_stops_and_its_own_error_callback_sees_why(
    sasl_kafka: LocalKafka,
) -> None:
    seen: list[KafkaError] = []
    kafka = settings(sasl_kafka, "wrong")
    consumer = Consumer(
        client_config(kafka, **{"group.id": f"g-{uuid.uuid4().hex}", "error_cb": seen.append})
    )
    consumer.subscribe(["anything"])
    try:
        with pytest.raises(KafkaLoginRejected, match=r"^kafka\.sasl\.password: "):
            for _ in range(120):  # consume serves the callback; the first refusal ends it
                consumer.consume(10, 0.5)
    finally:
        consumer.close()
    assert any(error.code() == KafkaError._AUTHENTICATION for error in seen)


def test_credentials_given_as_client_properties_are_named_as_such(
    sasl_kafka: LocalKafka,
) -> None:
    kafka = settings(sasl_kafka, clientProperties={"sasl.password": "rotated-wrong"})
    admin = AdminClient(client_config(kafka))
    with pytest.raises(KafkaLoginRejected, match=r"^kafka\.clientProperties\.sasl\.password: "):
        list_topics(admin, timeout=60)


def test_worker_login_with_a_wrong_password_names_the_password_setting(
    sasl_kafka: LocalKafka,
) -> None:
    with pytest.raises(KafkaLoginRejected, match=r"^kafka\.sasl\.password: .*SaslAuthentication"):
        check_faust_login(settings(sasl_kafka, "wrong"))


def test_worker_login_check_leaves_an_unreachable_broker_to_the_worker(
    sasl_kafka: LocalKafka,
) -> None:
    nowhere = settings(sasl_kafka, bootstrapServers=f"127.0.0.1:{free_port()}")
    check_faust_login(nowhere)  # nothing refused the login: Faust's start reports the rest


SASL_HANDSHAKE = 17  # the Kafka protocol's API key


class HandshakeDropper:
    """A TCP relay to a broker that closes its first `drops` connections when the client
    sends SaslHandshake, as a broker going down in the middle of a login does."""

    def __init__(self, upstream: str, drops: int) -> None:
        host, _, port = upstream.rpartition(":")
        self.upstream = (host, int(port))
        self.drops_left = drops
        self.dropped = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            broker = socket.create_connection(self.upstream)
            threading.Thread(target=self._requests, args=(client, broker), daemon=True).start()
            threading.Thread(target=self._pipe, args=(broker, client), daemon=True).start()

    def _requests(self, client: socket.socket, broker: socket.socket) -> None:
        """Client to broker, a request at a time (4-byte size, then the API key)."""
        pending = b""
        try:
            while data := client.recv(65536):
                pending += data
                while len(pending) >= 6 and len(pending) >= 4 + struct.unpack(">i", pending[:4])[0]:
                    size = struct.unpack(">i", pending[:4])[0]
                    request, pending = pending[: 4 + size], pending[4 + size :]
                    if struct.unpack(">h", request[4:6])[0] == SASL_HANDSHAKE and self.drops_left:
                        self.drops_left -= 1
                        self.dropped += 1
                        return
                    broker.sendall(request)
        except OSError:
            pass
        finally:
            client.close()
            broker.close()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            source.close()
            sink.close()

    def close(self) -> None:
        self.listener.close()


def test_a_connection_lost_during_the_login_is_retried_not_refused(
    sasl_kafka: LocalKafka,
) -> None:
    # librdkafka reports a SaslHandshake cut short as _AUTHENTICATION, as it does a refused
    # login: taken for one, it stopped a producer at start-up as if its password were wrong
    dropper = HandshakeDropper(sasl_kafka.sasl_bootstrap_servers, drops=3)
    seen: list[KafkaError] = []
    kafka = settings(sasl_kafka, bootstrapServers=dropper.address)
    admin = AdminClient(client_config(kafka, error_cb=seen.append))
    try:
        assert list_topics(admin, timeout=30).brokers

        def lost_logins_served() -> bool:
            admin.poll(0.1)  # serves the error callback: a refused login would raise here
            return sum(error.code() == KafkaError._AUTHENTICATION for error in seen) == 3

        wait_until(lost_logins_served, 30, "three lost logins reported")
    finally:
        dropper.close()
    assert dropper.dropped == 3
    lost = [error.str() for error in seen if error.code() == KafkaError._AUTHENTICATION]
    assert all(HANDSHAKE_LOST in text for text in lost), lost  # the words refused_login reads
