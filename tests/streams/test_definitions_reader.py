"""The definitions reader stops the worker when it cannot go on: without the
definitions every alarm event would wait for ever, behind a worker that looks alive."""

from __future__ import annotations

import asyncio

import pytest

from devenv import LocalKafka
from streams.definitions_reader import DefinitionsReader
from vcstream.kafka import KafkaLoginRejected
from vcstream.settings import Settings

pytestmark = pytest.mark.integration


def test_a_reader_refused_by_the_brokers_reports_it_and_never_says_loaded(
    sasl_kafka: LocalKafka,
) -> None:
    assert sasl_kafka.sasl is not None
    settings = Settings.model_validate(
        {
            "kafka": {
                "bootstrapServers": sasl_kafka.sasl_bootstrap_servers,
                "securityProtocol": "SASL_PLAINTEXT",
                "sasl": {
                    "mechanism": sasl_kafka.sasl.mechanism,
                    "username": sasl_kafka.sasl.username,
                    "password": "wrong",
                },
            }
        }
    )

    async def read() -> tuple[BaseException, bool]:
        failure: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
        reader = DefinitionsReader(settings, 1, failure.set_result)
        reader.start(asyncio.get_running_loop())
        try:
            error = await asyncio.wait_for(failure, 60)
        finally:
            reader.stop()
        return error, reader.loaded.is_set()

    error, loaded = asyncio.run(read())
    assert isinstance(error, KafkaLoginRejected)
    assert str(error).startswith("kafka.sasl.password: ")
    assert not loaded
