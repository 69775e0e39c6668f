"""Helpers for the producer tests: a config file, the producer as a real subprocess and a
read_committed topic reader. Events are made with devenv.activity.VcsimClient
(re-exported here, as other tests import it from this module)."""

from __future__ import annotations

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
from tests.role_process import RoleProcess, wait_for


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


class ProducerProcess(RoleProcess):
    """`vcstream produce` as users run it (`python -m cli` here); its log goes to a file."""

    def __init__(self, config: Path, log: Path) -> None:
        super().__init__(["produce"], config, log)

    def start(self) -> ProducerProcess:
        super().start()
        return self


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
