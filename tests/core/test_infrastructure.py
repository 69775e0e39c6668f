"""The ground floor: the real broker does transactions, vcsim speaks the vSphere API."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim

from devenv import LocalKafka, LocalVcsim
from vcstream.kafka import TopicSpec, ensure_topics
from vcstream.settings.kafka import KafkaSettings

pytestmark = pytest.mark.integration


def settings_for(kafka: LocalKafka) -> KafkaSettings:
    return KafkaSettings(bootstrapServers=kafka.bootstrap_servers)


def read_all(kafka: LocalKafka, topic: str, isolation: str, expect: int) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": kafka.bootstrap_servers,
            "group.id": f"reader-{isolation}-{topic}",
            "isolation.level": isolation,
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    values: list[bytes] = []
    deadline = time.monotonic() + 20
    idle = 0
    while time.monotonic() < deadline and idle < 5:
        message = consumer.poll(0.5)
        if message is None:
            idle += 1 if len(values) >= expect else 0
            continue
        if message.error():
            continue
        values.append(message.value() or b"")
    consumer.close()
    return values


def test_transactional_writes_are_read_back_committed_only(
    kafka: LocalKafka, topic_name: Callable[[str], str]
) -> None:
    topic = topic_name("txn")
    ensure_topics(settings_for(kafka), [TopicSpec(topic)])
    producer = Producer(
        {"bootstrap.servers": kafka.bootstrap_servers, "transactional.id": f"t-{topic}"}
    )
    producer.init_transactions(30)

    producer.begin_transaction()
    for index in range(10):
        producer.produce(topic, value=f"committed-{index}".encode(), headers={"ce_id": b"x"})
    producer.commit_transaction(30)

    producer.begin_transaction()
    producer.produce(topic, value=b"aborted")
    producer.flush(10)
    producer.abort_transaction(30)

    committed = read_all(kafka, topic, "read_committed", expect=10)
    everything = read_all(kafka, topic, "read_uncommitted", expect=11)
    assert committed == [f"committed-{index}".encode() for index in range(10)]
    assert b"aborted" in everything and b"aborted" not in committed


def test_ensure_topics_is_idempotent_and_applies_compaction(
    kafka: LocalKafka, topic_name: Callable[[str], str]
) -> None:
    from confluent_kafka.admin import AdminClient, ConfigResource

    topic = topic_name("compacted")
    spec = TopicSpec(topic, partitions=3, compacted=True)
    ensure_topics(settings_for(kafka), [spec])
    ensure_topics(settings_for(kafka), [spec])
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    assert len(admin.list_topics(topic, timeout=10).topics[topic].partitions) == 3
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    config = admin.describe_configs([resource])[resource].result()
    assert config["cleanup.policy"].value == "compact"


def test_pyvmomi_reads_power_events_from_vcsim_over_verified_tls(vcsim: LocalVcsim) -> None:
    si = SmartConnect(
        host="127.0.0.1",
        port=vcsim.port,
        user=vcsim.username,
        pwd=vcsim.password,
        sslContext=vcsim.ssl_context(),
    )
    try:
        content = si.RetrieveContent()
        view = content.viewManager.CreateContainerView(
            content.rootFolder, [vim.VirtualMachine], True
        )
        vm = view.view[0]
        view.Destroy()
        for task in (vm.PowerOffVM_Task(), vm.PowerOnVM_Task()):
            while task.info.state not in ("success", "error"):
                time.sleep(0.05)
            assert task.info.state == "success"

        spec = vim.event.EventFilterSpec(
            entity=vim.event.EventFilterSpec.ByEntity(entity=vm, recursion="self"),
            eventTypeId=["VmPoweredOffEvent", "VmPoweredOnEvent"],
        )
        collector = content.eventManager.CreateCollectorForEvents(spec)
        try:
            events = collector.ReadNextEvents(100)
        finally:
            collector.DestroyCollector()
        names = [type(event).__name__.split(".")[-1] for event in events]
        assert names[-2:] == ["VmPoweredOffEvent", "VmPoweredOnEvent"]
        assert all(event.vm.vm == vm for event in events[-2:])
    finally:
        Disconnect(si)


def test_vcsim_certificate_is_not_trusted_by_default(vcsim: LocalVcsim) -> None:
    with pytest.raises(ssl.SSLError):
        SmartConnect(
            host="127.0.0.1",
            port=vcsim.port,
            user=vcsim.username,
            pwd=vcsim.password,
            sslContext=ssl.create_default_context(),
        )
