"""The Horizon source across kill -9: every audit event exactly once."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from confluent_kafka import Producer

from devenv import LocalKafka
from devenv.horizon import HorizonStandIn
from producer.horizon_position import checkpoint_key
from tests.producer.conftest import ProducerProcess, Topics
from tests.producer.horizon_helpers import (
    all_written,
    emit_and_wait,
    exactly_once,
    horizon_entry,
    horizon_ids,
    one_server_config,
    write_horizon_config,
)
from tests.role_process import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class Emitter(threading.Thread):
    """Emits audit events continuously, 1 to 3 at a time (sharing a millisecond)."""

    def __init__(self, server: HorizonStandIn, rng: random.Random) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.rng = rng
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.05):
            self.server.emit(self.rng.randint(1, 3))

    def stop(self) -> None:
        self.halt.set()
        self.join(10)


@pytest.fixture
def horizon() -> Iterator[HorizonStandIn]:
    server = HorizonStandIn().start()
    yield server
    server.stop()


def _logged_any(producer: ProducerProcess, lines: tuple[str, ...]) -> bool:
    log = producer.log()
    return any(line in log for line in lines)


def test_horizon_survives_kill_9_ten_times_exactly_once(
    kafka: LocalKafka, horizon: HorizonStandIn, topics: Topics, tmp_path: Path, producer_process
) -> None:
    config = one_server_config(tmp_path, kafka, topics, horizon)
    rng = random.Random(20)
    emitter = Emitter(horizon, rng)
    emitter.start()
    positioned = ("Horizon cs: resuming after", "Horizon cs: no checkpoint; starting at")
    for run in range(10):
        producer = producer_process(config)
        if run % 2:
            # every other kill lands after the resume, whatever the machine's load: a
            # loaded machine can take longer than any fixed delay to start the producer
            wait_for(partial(_logged_any, producer, positioned), 60, "a position")
            threading.Event().wait(rng.uniform(0.0, 2.0))
        else:
            # random moments: during start-up, resume, the first poll or mid-stream
            threading.Event().wait(rng.uniform(0.5, 4.0))
        producer.kill()
    emitter.stop()
    producer = producer_process(config)
    wait_for(lambda: all_written(kafka, topics, horizon), 90, "every Horizon event")
    wait_for(lambda: "producing from" in producer.log(), 60, "the producer running")
    assert producer.terminate() == 0

    exactly_once(kafka, topics, horizon)
    assert len(horizon.event_ids()) > 400  # the emitter really ran across the kills
    # the kills did land while events were being written, not only before the first read
    logs = "".join(p.read_text() for p in tmp_path.glob("producer*.log"))
    assert logs.count("Horizon cs: resuming after") >= 3


def test_a_second_producer_for_the_same_horizon_server_takes_over(
    kafka: LocalKafka, horizon: HorizonStandIn, topics: Topics, tmp_path: Path, producer_process
) -> None:
    config = one_server_config(tmp_path, kafka, topics, horizon)
    first = producer_process(config)
    emit_and_wait(kafka, topics, horizon, 5, "the first events")
    second = producer_process(config)  # same server, same transactional.id
    wait_for(lambda: "Horizon cs: resuming after" in second.log(), 60, "the second resuming")
    emit_and_wait(kafka, topics, horizon, 10, "the events after the takeover")
    # the first one's next transaction is fenced: its only source stops, so it exits
    assert first.wait(60) == 1
    assert "another producer uses transactional.id" in first.log()
    assert second.terminate() == 0
    exactly_once(kafka, topics, horizon)


def test_unreadable_horizon_checkpoint_stops_that_server_instead_of_guessing(
    kafka: LocalKafka, horizon: HorizonStandIn, topics: Topics, tmp_path: Path, producer_process
) -> None:
    config = one_server_config(tmp_path, kafka, topics, horizon)
    first = producer_process(config)
    wait_for(lambda: "Horizon cs: no checkpoint" in first.log(), 60, "the first checkpoint")
    assert first.terminate() == 0
    writer = Producer({"bootstrap.servers": kafka.bootstrap_servers})
    writer.produce(topics.checkpoints, value=b"not avro", key=checkpoint_key(horizon.url))
    assert writer.flush(30) == 0
    horizon.emit(3)
    second = producer_process(config)
    assert second.wait(60) == 1  # its only source stopped
    assert "checkpoint of Horizon" in second.log() and "unreadable" in second.log()
    assert horizon_ids(kafka, topics, horizon) == {}  # nothing written from a guess


def test_horizon_survives_broker_restart_mid_stream(
    kafka_factory, horizon: HorizonStandIn, topics: Topics, tmp_path: Path, producer_process
) -> None:
    broker = kafka_factory()
    config = write_horizon_config(tmp_path / "c.yaml", broker, topics, horizon_entry(horizon, "cs"))
    producer: ProducerProcess = producer_process(config)
    emitter = Emitter(horizon, random.Random(7))
    emitter.start()
    wait_for(lambda: len(horizon_ids(broker, topics, horizon)) >= 50, 60, "events before")

    def committed() -> float:
        return producer.metric("vcstream_producer_transactions_committed_total", vcenter="cs")

    before = committed()
    broker.kill()  # the harshest restart: no controlled shutdown
    broker.start()
    wait_for(lambda: committed() > before, 90, "a transaction committed after the restart")
    emitter.stop()
    wait_for(lambda: all_written(broker, topics, horizon), 90, "every Horizon event")
    assert producer.terminate() == 0
    exactly_once(broker, topics, horizon)
