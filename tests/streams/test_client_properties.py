"""The Faust app the worker runs is built with what faust_broker_options translated:
every setting it returns lands in the app's configuration, none collides with one the
app sets itself (a collision would be a TypeError at start, for everyone who sets it)."""

from __future__ import annotations

from pathlib import Path

from faust.auth import SASLCredentials

from streams.app import StreamsApp
from streams.faust_kafka import faust_broker_options
from vcstream.settings import Settings

EVERY_PROPERTY_WITH_AN_EQUIVALENT = {
    "client.id": "vcstream-worker",
    "request.timeout.ms": "30000",
    "max.poll.interval.ms": "600000",
    "max.partition.fetch.bytes": "2097152",
    "metadata.max.age.ms": "60000",
    "connections.max.idle.ms": "120000",
    "message.max.bytes": "2000000",
    "compression.type": "lz4",
    "check.crcs": "false",
    "group.instance.id": "worker-0",
}


def test_every_translated_setting_reaches_the_faust_app(tmp_path: Path) -> None:
    settings = Settings.model_validate(
        {
            "kafka": {
                "securityProtocol": "SASL_PLAINTEXT",
                "sasl": {"mechanism": "SCRAM-SHA-256", "username": "svc", "password": "pw"},
                "clientProperties": EVERY_PROPERTY_WITH_AN_EQUIVALENT,
            },
            "streams": {"dataDir": str(tmp_path)},
        }
    )
    options = faust_broker_options(settings.kafka)
    assert set(options) - {"broker", "broker_credentials"}  # something to carry over

    conf = StreamsApp(settings, []).app.conf
    for name, value in options.items():
        if name not in ("broker", "broker_credentials"):
            assert getattr(conf, name) == value, name
    credentials = conf.broker_credentials
    assert isinstance(credentials, SASLCredentials)
    assert (credentials.username, credentials.mechanism.value) == ("svc", "SCRAM-SHA-256")
