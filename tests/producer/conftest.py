"""Helpers for the producer tests: a config file, the producer as a real subprocess and a
read_committed topic reader. Events are made with devenv.activity.VcsimClient
(re-exported here, as other tests import it from this module)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException

import schemas
from devenv import LocalKafka, LocalVcsim
from devenv.activity import VcsimClient
from producer.checkpoint import Checkpoint
from producer.compacted import read_to_end
from schemas.record import KafkaRecord

REPO = Path(__file__).resolve().parents[2]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@dataclass
class Topics:
    events: str
    checkpoints: str
    alarm_definitions: str


@pytest.fixture
def topics(topic_name: Callable[[str], str]) -> Topics:
    return Topics(topic_name("events"), topic_name("checkpoints"), topic_name("alarmdefs"))


def vcenter_entry(sim: LocalVcsim, name: str, password: str | None = None) -> str:
    return f"""
  - name: {name}
    url: {sim.url}
    username: {sim.username}
    password: {password or sim.password}
    caFile: {sim.ca_file}"""


def write_config(
    path: Path,
    bootstrap: str,
    topics: Topics,
    vcenters: str,
    producer: str = "",
    transaction_timeout: str = "10s",
    poll_interval: str = "1s",
) -> Path:
    path.write_text(
        f"""
kafka:
  bootstrapServers: "{bootstrap}"
topics:
  events: {topics.events}
  checkpoints: {topics.checkpoints}
  alarmDefinitions: {topics.alarm_definitions}
vcenters:{vcenters}
producer:
  startAt: earliest
  transactionalIdPrefix: test-{uuid.uuid4().hex[:8]}
  reconnect: {{initialDelay: 200ms, maxDelay: 2s}}
  pollInterval: {poll_interval}
  transactionTimeout: {transaction_timeout}
{producer}
metrics:
  port: 0
"""
    )
    return path


class ProducerProcess:
    """`vcstream produce` as users run it (`python -m cli` here); its log goes to a file."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log_path = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ProducerProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cli", "produce", "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def terminate(self, timeout: float = 60) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def wait(self, timeout: float = 60) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    @property
    def metrics_port(self) -> int:
        found = wait_for(
            lambda: re.findall(r"/healthz on port (\d+)", self.log()), 30, "the metrics port"
        )
        return int(found[-1])

    def get(self, path: str) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.metrics_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample on /metrics (0 when absent)."""
        _, text = self.get("/metrics")
        for line in text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            if all(f'{key}="{value}"' in line for key, value in labels.items()):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def stop_quietly(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def producer_process(tmp_path: Path) -> Iterator[Callable[[Path], ProducerProcess]]:
    started: list[ProducerProcess] = []

    def make(config: Path) -> ProducerProcess:
        process = ProducerProcess(config, tmp_path / f"producer{len(started)}.log").start()
        started.append(process)
        return process

    yield make
    for process in started:
        process.stop_quietly()


def read_topic(bootstrap: str, topic: str, timeout: float = 30) -> list[KafkaRecord]:
    """Every committed record of `topic` (isolation.level=read_committed), in order."""
    messages = read_to_end({"bootstrap.servers": bootstrap}, topic, timeout)
    return [KafkaRecord.from_confluent(message) for message in messages]


def read_topic_if_ready(bootstrap: str, topic: str) -> list[KafkaRecord]:
    """Like read_topic, but empty while the topic does not exist or its broker restarts."""
    try:
        return read_topic(bootstrap, topic)
    except KafkaException:
        return []


def event_key(record: KafkaRecord) -> int:
    data: Any = schemas.decode(record).get_data()
    return int(data["Key"])


def committed_up_to(kafka: LocalKafka, topics: Topics, key: int) -> bool:
    """Whether the producer's checkpoint has reached event `key`."""
    checkpoints = read_topic_if_ready(kafka.bootstrap_servers, topics.checkpoints)
    return bool(checkpoints) and Checkpoint.decode(checkpoints[-1].value or b"").position.key >= key


def topic_exists(kafka: LocalKafka, topic: str) -> bool:
    consumer = Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": "probe"})
    try:
        return topic in consumer.list_topics(timeout=10).topics
    finally:
        consumer.close()


def producer_on_vcsim(
    start: Callable[[Path], ProducerProcess],
    kafka: LocalKafka,
    topics: Topics,
    vcsim: LocalVcsim,
    config_path: Path,
    first_events: int = 10,
    type_id: str = "com.example.test",
) -> tuple[ProducerProcess, VcsimClient]:
    """A producer for one vcsim ("sim"), once it has committed `first_events` EventEx."""
    config = write_config(config_path, kafka.bootstrap_servers, topics, vcenter_entry(vcsim, "sim"))
    producer = start(config)
    client = VcsimClient(vcsim)
    client.post_eventex(first_events, type_id)
    newest = client.newest_key()
    wait_for(lambda: committed_up_to(kafka, topics, newest), 60, "first events")
    return producer, client
