"""SIGTERM: the worker writes what is on its way, commits what it processed and exits 0
within its grace, backlog or not; past the grace (a broker gone) it exits 1 by itself.

A stopping worker once waited for every record handed to its streams, a backlog it no
longer processed: SIGTERM hung until SIGKILL, and a restart re-emitted everything after
the last periodic commit."""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from schemas.record import KafkaRecord
from tests.role_process import wait_for
from tests.streams.helpers import StreamsWorker, consume, produce, streams_config, throttled_config
from tests.streams.test_crash_recovery import audit_output, events, expected_audit_id, written
from vcstream.kafka import client_config
from vcstream.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BACKLOG = 6000  # 12 s or more through the throttle: the SIGTERM lands mid-backlog


def committed_inputs(settings: Settings) -> dict[int, int]:
    """The streams group's committed offset per partition of the events topic."""
    topic = settings.topics.events
    consumer = Consumer(client_config(settings.kafka, **{"group.id": settings.streams.app_id}))
    try:
        offsets = consumer.committed([TopicPartition(topic, p) for p in (0, 1)], timeout=10)
        return {item.partition: max(item.offset, 0) for item in offsets}
    finally:
        consumer.close()


def input_offsets(settings: Settings) -> dict[tuple[int, int], KafkaRecord]:
    """Every record of the events topic by (partition, offset)."""
    records = consume(settings, settings.topics.events, BACKLOG, timeout=60)
    return {(r.partition or 0, r.offset): r for r in records if r.offset is not None}


def terminate(worker: StreamsWorker, within: float) -> int:
    assert worker.process is not None
    os.killpg(worker.process.pid, signal.SIGTERM)
    try:
        return worker.process.wait(within)
    except subprocess.TimeoutExpired:
        worker.kill()
        raise AssertionError(f"the worker was still running {within:.0f} s after SIGTERM") from None


def test_sigterm_with_a_backlog_commits_what_was_processed_and_exits_0(
    kafka, topic_name, tmp_path: Path
):
    config, env = throttled_config(
        tmp_path, kafka.bootstrap_servers, topic_name, shutdownGrace="10s"
    )
    worker = StreamsWorker(config, env=env)
    settings = worker.settings
    try:
        worker.start()
        produce(settings, settings.topics.events, events(1, BACKLOG))
        wait_for(lambda: written(settings, settings.topics.audit) >= 300, 60, "some output")
        code = terminate(worker, within=10 + 5)
        stopped = committed_inputs(settings)
        before_restart = written(settings, settings.topics.audit)

        worker.start()
        inputs = input_offsets(settings)
        audit = audit_output(settings, list(inputs.values()))
    finally:
        worker.stop()

    assert code == 0, worker.log()
    assert sum(stopped.values()) > 0, "nothing was committed at the stop"
    assert before_restart < BACKLOG, "the stop did not land mid-backlog"
    seen = Counter(event.get_id() for event in audit)
    assert set(seen) == {expected_audit_id(record) for record in inputs.values()}
    # what the stop committed was processed before it, and is not processed again
    done = {
        expected_audit_id(record)
        for (partition, offset), record in inputs.items()
        if offset < stopped[partition]
    }
    assert done
    assert [i for i in done if seen[i] != 1] == []


def test_a_stop_that_cannot_finish_ends_at_the_grace_with_exit_1(
    kafka_factory, topic_name, tmp_path: Path
):
    broker = kafka_factory()
    config = streams_config(tmp_path, broker.bootstrap_servers, topic_name, shutdownGrace="3s")
    worker = StreamsWorker(config)
    settings = worker.settings
    try:
        worker.start()
        produce(settings, settings.topics.events, events(1, 200))
        wait_for(lambda: written(settings, settings.topics.audit) >= 1, 60, "some output")
        broker.kill()  # the final flush and commit have nowhere to go
        code = terminate(worker, within=3 + 10)
    finally:
        worker.stop()

    assert code == 1
    assert "did not stop within streams.shutdownGrace (3 s)" in worker.log()
