"""`vcstream topics create` makes every pipeline topic with the layout the code expects."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from schemas.deadletter import DEFAULT_MAX_BYTES
from vcstream.devenv import LocalKafka
from vcstream.devenv.process import free_port
from vcstream.topics import DEAD_LETTER_MAX_MESSAGE_BYTES

pytestmark = pytest.mark.integration
CLI = [sys.executable, "-m", "vcstream"]


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
