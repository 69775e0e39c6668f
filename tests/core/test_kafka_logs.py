"""librdkafka's own log lines go through Python logging: formatted, redacted, rate-limited."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from devenv.process import free_port
from vcstream.kafka import client_config, producer_config
from vcstream.logging import KAFKA_LOGGER, KAFKA_REPEATS, RepeatFilter
from vcstream.settings import Settings


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def kafka_lines() -> Iterator[Collect]:
    handler = Collect()
    KAFKA_REPEATS.clear()  # another client's identical lines must not hold these back
    logger = logging.getLogger(KAFKA_LOGGER)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


CLIENTS: dict[str, Callable[[Settings], Any]] = {
    # the sinks' consumer, the dead-letter producer and replay's reader, the admin clients
    "consumer": lambda s: Consumer(client_config(s.kafka, **{"group.id": "logs"})),
    "producer": lambda s: Producer(producer_config(s.kafka)),
    "admin": lambda s: AdminClient(client_config(s.kafka)),
}


@pytest.mark.parametrize("kind", sorted(CLIENTS))
def test_client_logs_of_an_unreachable_broker_reach_the_librdkafka_logger(
    kind: str, kafka_lines: Collect
) -> None:
    settings = Settings(kafka={"bootstrapServers": f"127.0.0.1:{free_port()}"})
    client = CLIENTS[kind](settings)

    def logged() -> bool:
        client.poll(0.1)  # librdkafka hands its log lines over in the client's poll
        return any("Connection refused" in r.getMessage() for r in kafka_lines.records)

    wait_for(logged, 30, f"a log line of the {kind}")
    if kind == "consumer":
        client.close()


def test_repeated_lines_pass_once_per_period_and_then_say_how_many_were_suppressed() -> None:
    now = [100.0]
    repeats = RepeatFilter(period=30, clock=lambda: now[0])

    def line(text: str) -> logging.LogRecord:
        return logging.LogRecord(KAFKA_LOGGER, logging.ERROR, __file__, 1, text, None, None)

    passed = [
        repeats.filter(line(f"Connect failed (after {ms}ms in state CONNECT)")) for ms in range(5)
    ]
    assert passed == [True, False, False, False, False]  # digits differ: still one kind
    other = line("Metadata request failed")
    assert repeats.filter(other)  # another kind of line has its own window
    now[0] += 30
    late = line("Connect failed (after 7ms in state CONNECT)")
    assert repeats.filter(late)
    assert (
        late.getMessage()
        == "Connect failed (after 7ms in state CONNECT) (4 more like this suppressed)"
    )


@pytest.mark.integration
def test_sink_with_kafka_down_logs_json_redacted_and_rate_limited(tmp_path: Path) -> None:
    # the SASL password is a word librdkafka writes in every failed connect: each of its
    # lines must come through the redacting formatter to lose it
    password = "refused"
    config = tmp_path / "vcstream.yaml"
    config.write_text(
        json.dumps(
            {
                "kafka": {
                    "bootstrapServers": f"127.0.0.1:{free_port()}",
                    "securityProtocol": "SASL_PLAINTEXT",
                    "sasl": {"username": "u", "password": password},
                },
                "metrics": {"enabled": False},
                "logging": {"format": "json", "repeatInterval": "1s"},
                "sinks": {"slack": {"webhookUrl": "https://hooks.example/T000/B000/secret"}},
            }
        )
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "sink", "slack", "--config", str(config)],
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    assert process.stderr is not None
    reader = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        wait_for(
            lambda: any("more like this suppressed" in line for line in lines),
            60,
            "a suppressed repeat",
        )
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        reader.join(10)

    parsed = [json.loads(line) for line in lines]  # every line is one JSON object
    kafka = [entry["message"] for entry in parsed if entry["logger"] == KAFKA_LOGGER]
    connects = [m for m in kafka if "Connect to" in m]
    assert connects and all("Connection ********** " in m for m in connects)
    assert not any(password in line for line in lines)
    suppressed = [m for m in connects if "more like this suppressed" in m]
    assert suppressed  # repeats were held back, and said so


def test_kinds_past_the_bound_are_forgotten_once_their_period_is_over() -> None:
    now = [0.0]
    repeats = RepeatFilter(period=10, clock=lambda: now[0])
    repeats.MAX_KINDS = 3

    def line(text: str) -> logging.LogRecord:
        return logging.LogRecord(KAFKA_LOGGER, logging.ERROR, __file__, 1, text, None, None)

    assert all(repeats.filter(line(f"kind {c}")) for c in "abc")
    now[0] = 11  # a, b and c are over: a fourth kind makes room by dropping them
    assert repeats.filter(line("kind d"))
    assert len(repeats._windows) == 1
    assert repeats.filter(line("kind a"))  # a starts afresh, no stale count
    assert not repeats.filter(line("kind a"))
