"""The worker's committed offsets keep up with transactional input.

The producer writes each page of events in a Kafka transaction, so the input's offsets
have a gap at every commit marker. A worker whose commits stopped at each marker fell
~480,000 offsets behind in 25 minutes of steady load (one commit interval per marker),
and a restart re-emitted everything after its last commit. These tests write many small
transactions, as the producer does under load, and hold the worker to the log end.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from tests.role_process import wait_for
from tests.streams.helpers import StreamsWorker, consume, produce_in_transactions, streams_config
from tests.streams.test_worker import vsphere
from vcstream.kafka import client_config
from vcstream.settings import Settings

pytestmark = pytest.mark.integration

TRANSACTIONS = 200
PER_TRANSACTION = 3


def log_ends(settings: Settings, topic: str) -> dict[int, int]:
    consumer = Consumer(client_config(settings.kafka, **{"group.id": "test-log-ends"}))
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        return {
            partition: consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)[1]
            for partition in metadata.partitions
        }
    finally:
        consumer.close()


def committed(settings: Settings, topic: str, partitions: list[int]) -> dict[int, int]:
    consumer = Consumer(client_config(settings.kafka, **{"group.id": settings.streams.app_id}))
    try:
        offsets = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return {item.partition: item.offset for item in offsets}
    finally:
        consumer.close()


def test_commits_reach_the_log_end_of_transactional_input(kafka, topic_name, tmp_path: Path):
    config = streams_config(tmp_path, kafka.bootstrap_servers, topic_name)
    worker = StreamsWorker(config)
    settings = worker.settings
    # one VM: one key, one partition, as the producer's busiest partition under load
    records = [vsphere("VmPoweredOnEvent") for _ in range(TRANSACTIONS * PER_TRANSACTION)]
    try:
        worker.start()
        produce_in_transactions(settings, settings.topics.events, records, PER_TRANSACTION)
        consume(settings, settings.topics.audit, len(records), timeout=120)
        # (a partition nothing was written to has nothing to commit)
        ends = {p: end for p, end in log_ends(settings, settings.topics.events).items() if end}
        # The log end is past the last marker: a worker that processed everything
        # commits it within a commit interval or two (500 ms here), however many
        # transactions the input had. Stopping at each marker took 100 s for these.
        seen: list[dict[int, int]] = []

        def at_log_end() -> bool:
            seen.append(committed(settings, settings.topics.events, list(ends)))
            return seen[-1] == ends

        try:
            wait_for(at_log_end, 20, f"committed offsets at the log end {ends}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last committed {seen[-1]}") from None
    finally:
        worker.stop()
