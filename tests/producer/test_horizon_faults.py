"""The Horizon source across kill -9: every audit event exactly once."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from devenv import LocalKafka
from devenv.horizon import HorizonStandIn
from tests.producer.conftest import Topics, wait_for
from tests.producer.horizon_helpers import (
    all_written,
    exactly_once,
    horizon_entry,
    write_horizon_config,
)

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


def test_horizon_survives_kill_9_ten_times_exactly_once(
    kafka: LocalKafka, horizon: HorizonStandIn, topics: Topics, tmp_path: Path, producer_process
) -> None:
    config = write_horizon_config(tmp_path / "c.yaml", kafka, topics, horizon_entry(horizon, "cs"))
    rng = random.Random(20)
    emitter = Emitter(horizon, rng)
    emitter.start()
    for _ in range(10):
        producer = producer_process(config)
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
    assert logs.count("Horizon cs: resuming after") >= 5
