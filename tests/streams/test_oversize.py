"""An output too large for Kafka: the worker dead-letters it in a form that fits and goes
on. It once crashed its agent on the MessageSizeTooLargeError instead: the records
behind it were never delivered, a restart re-emitted some, and SIGTERM hung."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import MessageSizeTooLargeError
from confluent_kafka import Producer
from faust.exceptions import ProducerSendError

from schemas.codec import encode_vsphere
from schemas.deadletter import error_context, record_size
from schemas.record import KafkaRecord
from schemas.vsphere import VCenterIdentity
from streams import oversize
from tests.role_process import wait_for
from tests.streams.helpers import StreamsWorker, committed_through, consume, streams_config
from vcstream.kafka import TopicSpec, client_config, ensure_topics

VC = VCenterIdentity("77777777-2222-3333-4444-555555555555", "https://vc.big/sdk", "8.0.3.0")
BIG_VALUE = 3_000_000  # the worker's producer takes 1,000,000 at most (Faust's default)
TOPIC_LIMIT = 8_000_000  # what the raw topic, and the producer that wrote it, take


def powered_on(key: int, message: str = "") -> KafkaRecord:
    vm = {"Name": f"vm{key % 4}", "Vm": {"Type": "VirtualMachine", "Value": f"vm-{key % 4}"}}
    body = {"Key": key, "CreatedTime": "2025-03-01T10:00:00Z", "Vm": vm}
    return encode_vsphere({**body, "FullFormattedMessage": message}, "VmPoweredOnEvent", VC)


def ce_id(record: KafkaRecord) -> str:
    value = record.header("ce_id")
    return value.decode() if value else ""


def test_too_large_is_the_size_error_however_faust_wraps_it() -> None:
    error = MessageSizeTooLargeError("The message is 3000300 bytes when serialized")
    wrapped = ProducerSendError(f"Error while sending: {error!r}")
    wrapped.__cause__ = error  # as Faust's Producer.send raises it
    assert oversize.too_large(error) is error
    assert oversize.too_large(wrapped) is error
    other: BaseException = ProducerSendError("Error while sending: KafkaTimeoutError()")
    other.__cause__ = TimeoutError()
    assert oversize.too_large(other) is None
    assert oversize.too_large(RuntimeError()) is None


def test_fitting_cuts_the_value_as_the_sinks_do_and_says_so() -> None:
    record = KafkaRecord(b"v" * 2_000_000, b"key", [("ce_id", b"1")])
    error = MessageSizeTooLargeError("too large")
    dead = oversize.fitting(record, "vcenter.audit", error, limit=1_000_000)
    assert record_size(dead) <= 1_000_000
    context = error_context(dead)
    assert context["stage"] == "streams:send" and context["reason"] == "oversize"
    assert context["dest"] == "vcenter.audit"
    assert context["truncated"] == "value"
    assert context["value.size"] == "2000000"
    assert context["value.sha256"] == hashlib.sha256(record.value or b"").hexdigest()
    assert record.value is not None and record.value.startswith(dead.value or b"")
    assert dead.header("ce_id") == b"1"
    # a record that is not cut says nothing about cutting
    small = oversize.fitting(KafkaRecord(b"v", b"k"), "t", error, limit=1_000_000)
    assert small.value == b"v" and "truncated" not in error_context(small)


@dataclass
class Run:
    big: KafkaRecord
    expected: set[str]  # ids of the good records
    audit: list[KafkaRecord]
    dead: list[KafkaRecord]
    dead_lettered: float
    code: int
    log: str


def run_with_a_big_record(
    kafka: Any, topic_name: Any, tmp_path: Path, size: int, limits: dict[str, int]
) -> Run:
    """Good records, one of `size` bytes, good records behind it on the same partition,
    through a worker whose topics have these `max.message.bytes`; then SIGTERM."""
    config = streams_config(tmp_path, kafka.bootstrap_servers, topic_name)
    worker = StreamsWorker(config)
    settings = worker.settings
    topics = settings.topics
    named = {"events": topics.events, "audit": topics.audit}
    specs = [
        TopicSpec(named[name], 2, extra={"max.message.bytes": str(limit)})
        for name, limit in limits.items()
    ]
    ensure_topics(settings.kafka, specs)
    good = [powered_on(key) for key in range(1, 41)]
    big = powered_on(41, "x" * size)  # vm-1: the partition of keys 1, 5, 9, ...
    behind = [powered_on(key) for key in range(45, 85)]
    producer = Producer(client_config(settings.kafka, **{"message.max.bytes": TOPIC_LIMIT}))
    for record in [*good, big, *behind]:
        producer.produce(
            topics.events, value=record.value, key=record.key, headers=list(record.headers)
        )
    assert producer.flush(30) == 0
    expected = {ce_id(record) for record in [*good, *behind]}
    try:
        worker.start()
        audit = consume(
            settings,
            topics.audit,
            len(expected),
            until=lambda found: {ce_id(r) for r in found} >= expected,
        )
        dead = consume(settings, topics.dead_letter, 1)
        wait_for(lambda: committed_through(settings, topics.events), 30, "the commit past all")
        dead_lettered = worker.metric(
            "vcstream_streams_dead_lettered_total", {"processor": "send", "reason": "oversize"}
        )
        code = worker.stop()
        log = worker.log()
    finally:
        worker.stop()
    return Run(big, expected, audit, dead, dead_lettered, code, log)


def assert_dead_lettered_and_the_rest_delivered(run: Run) -> dict[str, str]:
    assert run.code == 0, run.log  # SIGTERM: a clean stop, not the 30 s timeout's SIGKILL
    seen = Counter(ce_id(record) for record in run.audit)
    assert set(seen) == run.expected, run.log  # all behind the big record, not the big one
    assert [i for i, n in seen.items() if n != 1] == []  # no restart, no repeat
    assert len(run.dead) == 1 and run.dead_lettered == 1
    [letter] = run.dead
    assert letter.header("ce_id") == run.big.header("ce_id")
    context = error_context(letter)
    assert context["stage"] == "streams:send" and context["reason"] == "oversize"
    assert context["exception.class"] == "MessageSizeTooLargeError"
    assert letter.value and (run.big.value or b"").startswith(letter.value)
    assert "Traceback" not in run.log  # the agent never crashed
    return context


@pytest.mark.integration
def test_oversize_record_between_good_ones_is_dead_lettered_and_those_behind_it_delivered(
    kafka, topic_name, tmp_path: Path
):
    # the raw topic takes a record larger than the worker's producer sends (1,000,000)
    run = run_with_a_big_record(kafka, topic_name, tmp_path, BIG_VALUE, {"events": TOPIC_LIMIT})
    context = assert_dead_lettered_and_the_rest_delivered(run)
    assert "bytes when serialized" in context["exception.message"]  # aiokafka's refusal
    # larger than the dead-letter topic takes: cut, and said so
    assert context["truncated"] == "value"
    assert context["value.size"] == str(len(run.big.value or b""))


@pytest.mark.integration
def test_record_over_its_output_topics_limit_is_dead_lettered_not_sent_in_a_batch(
    kafka, topic_name, tmp_path: Path
):
    # under the producer's limit, over the audit topic's: the broker would refuse the
    # whole batch it is in, good records batched with it too
    limits = {"events": TOPIC_LIMIT, "audit": 100_000}
    run = run_with_a_big_record(kafka, topic_name, tmp_path, 300_000, limits)
    context = assert_dead_lettered_and_the_rest_delivered(run)
    assert "max.message.bytes 100000" in context["exception.message"]
    assert "truncated" not in context  # the dead-letter topic takes it whole
