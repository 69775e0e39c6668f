"""The AdminClient that makes a replay's plan: librdkafka settings of its own, a user's
clientProperties above them."""

from __future__ import annotations

from replay.plan import PLAN_CLIENT_SETTINGS, plan_client_config
from vcstream.settings.kafka import KafkaSettings


def test_the_plan_client_retries_its_first_request_soon() -> None:
    config = plan_client_config(KafkaSettings(bootstrapServers="127.0.0.1:9092"))
    assert config["reconnect.backoff.ms"] == PLAN_CLIENT_SETTINGS["reconnect.backoff.ms"]
    assert config["bootstrap.servers"] == "127.0.0.1:9092"
    assert "error_cb" in config  # still client_config's: a refused login is raised


def test_a_users_client_property_wins_over_the_plans() -> None:
    kafka = KafkaSettings(
        bootstrapServers="127.0.0.1:9092", clientProperties={"reconnect.backoff.ms": "250"}
    )
    assert plan_client_config(kafka)["reconnect.backoff.ms"] == "250"
