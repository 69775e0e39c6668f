"""`vcstream topics create` makes every pipeline topic with the layout the code expects."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

from devenv import LocalKafka
from devenv.process import free_port
from schemas.deadletter import DEFAULT_MAX_BYTES
from vcstream.kafka import COMPACTED_TOPIC_CONFIG, TopicSpec, ensure_topics
from vcstream.settings.kafka import KafkaSettings
from vcstream.topics import DEAD_LETTER_MAX_MESSAGE_BYTES

pytestmark = pytest.mark.integration
CLI = [sys.executable, "-m", "cli"]


def test_topics_create_makes_every_topic_once(kafka: LocalKafka, tmp_path: Path) -> None:
    config = tmp_path / "vcstream.yaml"
    config.write_text(
        f"""
kafka:
  bootstrapServers: {kafka.bootstrap_servers}
topics:
  events: t.events
  checkpoints: t.checkpoints
  alarmDefinitions: t.alarm-definitions
  alarms: t.alarms
  audit: t.audit
  deadLetter: t.dead-letter
producer:
  rawTopic: {{partitions: 4, retention: 7d}}
"""
    )
    for _ in range(2):  # idempotent: the compose job may run on every `up`
        result = subprocess.run(
            [*CLI, "topics", "create", "--config", str(config)],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    topics = admin.list_topics(timeout=10).topics
    assert len(topics["t.events"].partitions) == 4
    resources = {
        name: ConfigResource(ConfigResource.Type.TOPIC, name)
        for name in ("t.events", "t.checkpoints", "t.dead-letter")
    }
    configs = {
        name: future.result()
        for name, future in zip(
            resources, admin.describe_configs(list(resources.values())).values(), strict=True
        )
    }
    assert configs["t.events"]["retention.ms"].value == str(7 * 86400 * 1000)
    assert configs["t.checkpoints"]["cleanup.policy"].value == "compact"
    for name, value in COMPACTED_TOPIC_CONFIG.items():  # segments the cleaner can reach
        assert configs["t.checkpoints"][name].value == value, name
    assert configs["t.dead-letter"]["retention.ms"].value == "-1"
    # what every stage cuts its dead letters to fit
    assert configs["t.dead-letter"]["max.message.bytes"].value == str(DEFAULT_MAX_BYTES)


def test_dead_letter_topic_takes_what_the_dead_letter_builder_cuts_to() -> None:
    assert DEAD_LETTER_MAX_MESSAGE_BYTES == DEFAULT_MAX_BYTES


def test_topics_create_reports_unreachable_kafka_and_exits_1(tmp_path: Path) -> None:
    config = tmp_path / "vcstream.yaml"
    config.write_text(f"kafka:\n  bootstrapServers: 127.0.0.1:{free_port()}\n")
    result = subprocess.run(
        [*CLI, "topics", "create", "--config", str(config), "--timeout", "3"],
        check=False,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 1
    assert "cannot create topics" in result.stderr


def test_a_compacted_topic_stays_small_after_many_commits(kafka: LocalKafka) -> None:
    # the checkpoints' pattern: one key, a transaction each. Segments close after 200 ms
    # here instead of minutes, so the cleaner (every second on the session broker, see
    # QUICK_CHORES) gets to work within the test
    topic = f"compacted.{uuid.uuid4().hex[:8]}"
    quick = {"segment.ms": "200", "delete.retention.ms": "0", "min.cleanable.dirty.ratio": "0.01"}
    ensure_topics(
        KafkaSettings(bootstrapServers=kafka.bootstrap_servers),
        [TopicSpec(topic, compacted=True, extra=quick)],
    )
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "transactional.id": topic})
    producer.init_transactions()
    for n in range(1000):
        producer.begin_transaction()
        producer.produce(topic, key=b"vcenter", value=f"checkpoint {n:06d}".encode() * 8)
        producer.commit_transaction()

    def kept() -> int:  # records (and transaction markers) still in the log
        consumer = Consumer(
            {
                "bootstrap.servers": kafka.bootstrap_servers,
                "group.id": f"count-{uuid.uuid4().hex}",
                "enable.partition.eof": True,
            }
        )
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        count = 0
        try:
            while True:
                message = consumer.poll(10)
                assert message is not None, "no end of partition within 10 s"
                if message.error() is not None:
                    return count
                count += 1
        finally:
            consumer.close()

    deadline = time.monotonic() + 90
    while kept() > 100 and time.monotonic() < deadline:
        time.sleep(1)
    assert kept() <= 100  # of the 1,000 written
