"""Start-up: bad configuration is a clear error, a non-zero exit, and nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import Producer
from pyVim.connect import Disconnect, SmartConnect

from devenv import LocalKafka, LocalVcsim
from devenv.process import free_port
from tests.producer.conftest import Topics, read_topic, topic_exists, vcenter_entry, write_config
from vcstream.kafka import TopicSpec, ensure_topics
from vcstream.settings.kafka import KafkaSettings

pytestmark = pytest.mark.integration


def assert_nothing_written(kafka: LocalKafka, topics: Topics) -> None:
    for topic in (topics.events, topics.checkpoints, topics.alarm_definitions):
        assert not topic_exists(kafka, topic), f"{topic} was created"


def test_unreachable_vcenter_exits_1_naming_it(
    kafka: LocalKafka, topics: Topics, tmp_path: Path, producer_process
) -> None:
    vcenters = f"""
  - name: nowhere
    url: https://127.0.0.1:{free_port()}/sdk
    username: vcstream
    password: irrelevant"""
    config = write_config(
        tmp_path / "c.yaml", kafka.bootstrap_servers, topics, vcenters, "  startupTimeout: 2s\n"
    )
    producer = producer_process(config)
    assert producer.wait(60) == 1
    log = producer.log()
    assert "vCenter nowhere" in log
    assert "no vCenter could be reached" in log
    assert_nothing_written(kafka, topics)


def test_wrong_password_exits_2_without_showing_it(
    kafka: LocalKafka, vcsim: LocalVcsim, topics: Topics, tmp_path: Path, producer_process
) -> None:
    wrong = "not-the-password-7f3a"
    config = write_config(
        tmp_path / "c.yaml",
        kafka.bootstrap_servers,
        topics,
        vcenter_entry(vcsim, "sim", password=wrong),
    )
    producer = producer_process(config)
    assert producer.wait(60) == 2
    log = producer.log()
    assert "configuration error: vCenter sim" in log
    assert "login failed for user 'vcstream'" in log
    assert wrong not in log
    assert_nothing_written(kafka, topics)


def test_untrusted_certificate_exits_2_with_a_hint(
    kafka: LocalKafka, vcsim: LocalVcsim, topics: Topics, tmp_path: Path, producer_process
) -> None:
    vcenters = f"""
  - name: sim
    url: {vcsim.url}
    username: {vcsim.username}
    password: {vcsim.password}"""  # no caFile: the self-signed certificate is not trusted
    config = write_config(tmp_path / "c.yaml", kafka.bootstrap_servers, topics, vcenters)
    producer = producer_process(config)
    assert producer.wait(60) == 2
    assert "TLS certificate not trusted" in producer.log()
    assert "set caFile" in producer.log()
    assert_nothing_written(kafka, topics)


def test_unknown_key_exits_2_naming_it(
    kafka: LocalKafka, vcsim: LocalVcsim, topics: Topics, tmp_path: Path, producer_process
) -> None:
    config = write_config(
        tmp_path / "c.yaml",
        kafka.bootstrap_servers,
        topics,
        vcenter_entry(vcsim, "sim"),
        "  pageSzie: 50\n",
    )
    producer = producer_process(config)
    assert producer.wait(60) == 2
    assert "producer.pageSzie: unknown key" in producer.log()
    assert_nothing_written(kafka, topics)


def test_unreachable_kafka_exits_1_after_startup_timeout(
    vcsim: LocalVcsim, topics: Topics, tmp_path: Path, producer_process
) -> None:
    config = write_config(
        tmp_path / "c.yaml",
        f"127.0.0.1:{free_port()}",
        topics,
        vcenter_entry(vcsim, "sim"),
        "  startupTimeout: 3s\n",
    )
    producer = producer_process(config)
    assert producer.wait(90) == 1
    assert "Kafka at 127.0.0.1:" in producer.log()


def test_corrupt_checkpoint_stops_that_vcenter_without_writing_events(
    kafka: LocalKafka, vcsim: LocalVcsim, topics: Topics, tmp_path: Path, producer_process
) -> None:
    si = SmartConnect(
        host="127.0.0.1",
        port=vcsim.port,
        user=vcsim.username,
        pwd=vcsim.password,
        sslContext=vcsim.ssl_context(),
    )
    uuid = si.content.about.instanceUuid
    Disconnect(si)
    settings = KafkaSettings(bootstrapServers=kafka.bootstrap_servers)
    ensure_topics(settings, [TopicSpec(topics.checkpoints, compacted=True)])
    garbage = Producer({"bootstrap.servers": kafka.bootstrap_servers})
    garbage.produce(topics.checkpoints, key=uuid.encode(), value=b"not avro")
    garbage.flush(10)

    config = write_config(
        tmp_path / "c.yaml", kafka.bootstrap_servers, topics, vcenter_entry(vcsim, "sim")
    )
    producer = producer_process(config)
    # resuming from a guess could lose or repeat events: the vCenter stops instead
    assert producer.wait(60) == 1
    assert "checkpoint of vCenter sim" in producer.log()
    assert "is unreadable" in producer.log()
    assert read_topic(kafka.bootstrap_servers, topics.events) == []
