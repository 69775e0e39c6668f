"""Fault: a record larger than the dead-letter topic takes, between good records.

The input topic allows 5 MB records (`max.message.bytes` raised, as a user may); the
dead-letter topic keeps vcstream's 1 MiB. Every sink must dead-letter the oversize
record in a form that fits, and deliver the good records behind it. When even the
dead-letter topic refuses, the sink says so (metric, log, /healthz) and holds the
partition back, and catches up once the topic takes the record.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource
from prometheus_client import REGISTRY

from devenv.process import free_port
from schemas.record import KafkaRecord
from sinks import registry
from sinks.deadletters import DeadLetterError, DeadLetterWriter
from sinks.runtime import SinkRunner
from tests.sinks.helpers import committed, read_all, run_until, settled, sink_settings
from tests.sinks.receivers import Receiver, parse_cloudevent, parse_slack
from tests.sinks.test_slack import alarm_records
from vcstream.kafka import TopicSpec, ensure_topics
from vcstream.observability import Health
from vcstream.settings import Settings
from vcstream.topics import DEAD_LETTER_MAX_MESSAGE_BYTES

pytestmark = pytest.mark.integration
BIG = 5_000_000
OVERSIZE = 3_000_000  # more than the dead-letter topic takes, less than the input's limit


def oversize_record() -> KafkaRecord:
    # no CloudEvent headers, a value of bytes that do not compress: poison to every sink
    value = hashlib.shake_256(b"oversize").digest(OVERSIZE)
    return KafkaRecord(value, b"vc01/vm-9", [("origin", b"a-misbehaving-writer")])


def produce_big(bootstrap: str, topic: str, records: list[KafkaRecord]) -> None:
    settings = Settings(kafka={"bootstrapServers": bootstrap})
    ensure_topics(settings.kafka, [TopicSpec(topic, 1, extra={"max.message.bytes": str(BIG)})])
    # idempotent: a retried request under load must not reorder the records
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "message.max.bytes": BIG + 100_000,
            "enable.idempotence": True,
        }
    )
    for record in records:
        headers: list[tuple[str, str | bytes | None]] = list(record.headers)
        producer.produce(topic, value=record.value, key=record.key, headers=headers)
    assert producer.flush(60) == 0


def dead_letter_topic(bootstrap: str, name: str, max_bytes: int) -> None:
    settings = Settings(kafka={"bootstrapServers": bootstrap})
    spec = TopicSpec(name, 1, extra={"max.message.bytes": str(max_bytes)})
    ensure_topics(settings.kafka, [spec])


SECTIONS: dict[str, Callable[[str, Any], dict[str, Any]]] = {
    "knative": lambda url, _tmp: {"url": url},
    "slack": lambda url, _tmp: {"webhookUrl": url, "minInterval": "PT0.01S"},
    "audit": lambda _url, tmp: {"files": {"directory": str(tmp / "audit")}},
}


@pytest.fixture
def receiver(request: pytest.FixtureRequest) -> Iterator[Receiver]:
    server = Receiver(
        parse_slack if request.node.callspec.params["kind"] == "slack" else parse_cloudevent
    ).start()
    yield server
    server.stop()


def delivered_keys(kind: str, receiver: Receiver, tmp_path: Any) -> int:
    if kind == "audit":
        from sinks.audit.file_layout import read_file
        from sinks.audit.files import AuditFiles

        return sum(1 for f in AuditFiles(tmp_path / "audit").files() for _ in read_file(f.path))
    return len(receiver.accepted)


@pytest.mark.parametrize("kind", ["knative", "slack", "audit"])
def test_oversize_record_between_good_ones_is_dead_lettered_and_the_rest_delivered(
    kafka, topic_name, tmp_path, receiver, kind
):
    topic, dlq = topic_name("in"), topic_name("dlq")
    good = alarm_records(10)
    produce_big(kafka.bootstrap_servers, topic, [*good[:5], oversize_record(), *good[5:]])
    dead_letter_topic(kafka.bootstrap_servers, dlq, DEAD_LETTER_MAX_MESSAGE_BYTES)
    section = {"topics": [topic], **SECTIONS[kind](receiver.url, tmp_path)}
    settings = sink_settings(kafka.bootstrap_servers, kind, dlq, **section)
    runner = SinkRunner(
        registry.create_sink(kind, settings),
        settings.kafka,
        topics=[topic],
        group_id=registry.group_id(kind, settings),
        dead_letter_topic=dlq,
    )

    run_until(runner, settled(runner, 11), timeout=120)

    report = runner.report
    assert (report.delivered, report.dead_lettered, report.filtered) == (10, 1, 0)
    assert delivered_keys(kind, receiver, tmp_path) == 10  # lost: none
    assert committed(kafka.bootstrap_servers, registry.group_id(kind, settings), topic) == 11
    [letter] = read_all(kafka.bootstrap_servers, dlq, timeout=30)
    context = {k.removeprefix("vcstream.error."): v.decode() for k, v in letter.headers}
    assert (context["reason"], context["offset"], context["stage"]) == (
        "poison",
        "5",
        f"sink:{kind}",
    )
    original = oversize_record()
    assert context["truncated"] == "value"
    assert context["value.size"] == str(OVERSIZE)
    assert context["value.sha256"] == hashlib.sha256(original.value or b"").hexdigest()
    assert letter.value and (original.value or b"").startswith(letter.value)
    assert letter.key == original.key and context["origin"] == "a-misbehaving-writer"


def test_dead_letter_topic_refusing_a_record_degrades_health_and_holds_the_partition(
    kafka, topic_name, tmp_path
):
    topic, dlq = topic_name("in"), topic_name("dlq")
    good = alarm_records(6)
    produce_big(kafka.bootstrap_servers, topic, [*good[:3], oversize_record(), *good[3:]])
    # a dead-letter topic made by hand with a small limit: the fitted copy is still too big
    dead_letter_topic(kafka.bootstrap_servers, dlq, 40_000)
    section = {"topics": [topic], "files": {"directory": str(tmp_path / "audit")}}
    settings = sink_settings(kafka.bootstrap_servers, "audit", dlq, **section)
    health = Health()
    runner = SinkRunner(
        registry.create_sink("audit", settings),
        settings.kafka,
        topics=[topic],
        group_id="vcstream-sink-audit",
        dead_letter_topic=dlq,
        health=health,
    )

    def failures() -> float:
        name = "vcstream_sink_dead_letter_failures_total"
        return REGISTRY.get_sample_value(name, {"sink": "audit"}) or 0.0

    before = failures()
    seen: dict[str, Any] = {}

    def blocked_then_fixed() -> bool:
        healthy, checks = health.report()
        if "reason" not in seen and not healthy and failures() > before:
            seen["reason"] = checks["dead-letters"]
            seen["committed"] = committed(kafka.bootstrap_servers, "vcstream-sink-audit", topic)
            seen["delivered"] = runner.report.delivered
            raise_limit(kafka.bootstrap_servers, dlq, DEAD_LETTER_MAX_MESSAGE_BYTES)
        if "reason" not in seen:
            return False
        # the batch delivered again, its dead letter taken; audit files commit when they
        # close (at the stop below), so the committed offset is checked after it
        return runner.report.delivered >= seen["delivered"] + 6 and health.report()[0]

    run_until(runner, blocked_then_fixed, timeout=180)
    assert committed(kafka.bootstrap_servers, "vcstream-sink-audit", topic) == 7

    assert "max.message.bytes must be at least 1048576" in seen["reason"]
    assert seen["committed"] < 3 + 1  # never past the record that was not dead-lettered
    assert seen["delivered"] == 6  # the batch was delivered, then held back for its dead letter
    # ... and delivered again when retried: at least once, the audit store is idempotent
    from sinks.audit.file_layout import read_file
    from sinks.audit.files import AuditFiles

    offsets = sorted(
        r["offset"] for f in AuditFiles(tmp_path / "audit").files() for r in read_file(f.path)
    )
    assert offsets == [0, 1, 2, 4, 5, 6]  # delivered 6, dead-lettered 1, lost 0
    assert len(read_all(kafka.bootstrap_servers, dlq, timeout=30)) == 1


def raise_limit(bootstrap: str, topic: str, max_bytes: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry(
                "max.message.bytes", str(max_bytes), incremental_operation=AlterConfigOpType.SET
            )
        ],
    )
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(30)


def test_dead_letter_producer_refusing_to_queue_is_a_dead_letter_error():
    # a real producer whose queue holds one record, with no broker to drain it
    kafka = Settings(
        kafka={
            "bootstrapServers": f"127.0.0.1:{free_port()}",
            "clientProperties": {"queue.buffering.max.messages": "1"},
        }
    ).kafka
    writer = DeadLetterWriter(kafka, "vcstream.dead-letter", flush_timeout=1)
    try:
        writer.send(KafkaRecord(b"first"))
        with pytest.raises(DeadLetterError, match=r"vcstream\.dead-letter: .*Queue full"):
            writer.send(KafkaRecord(b"second"))
        assert "Queue full" in (writer.health() or "")  # /readyz names it
    finally:
        writer.close()
