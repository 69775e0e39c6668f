"""Read a compacted topic to its end: the newest value of every key (None: tombstone).

Read with `isolation.level=read_committed` after this process's transactional producer
has initialised, so a transaction a killed predecessor left open has been aborted by
then and its records are never taken for state.
"""

from __future__ import annotations

import logging
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from vcstream.kafka import client_config
from vcstream.settings.kafka import KafkaSettings


class TopicReadTimeout(Exception):
    """The topic's end was not reached in time (Kafka slow or unavailable)."""


def read_compacted(
    kafka: KafkaSettings,
    topic: str,
    key_prefix: bytes = b"",
    timeout: float = 60,
) -> dict[bytes, bytes | None]:
    """Every key starting with `key_prefix` and its newest committed value."""
    consumer = Consumer(
        client_config(
            kafka,
            **{
                # never commits: the group only names the client in broker logs
                "group.id": f"vcstream-producer-state-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
            },
        ),
        logger=logging.getLogger("librdkafka"),
    )
    try:
        metadata = consumer.list_topics(topic, timeout=timeout)
        described = metadata.topics.get(topic)
        if described is None or described.error is not None:
            raise KafkaException(described.error if described else f"no topic {topic}")
        partitions = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in described.partitions]
        consumer.assign(partitions)
        remaining = {tp.partition for tp in partitions}
        state: dict[bytes, bytes | None] = {}
        deadline = time.monotonic() + timeout
        while remaining:
            if time.monotonic() > deadline:
                raise TopicReadTimeout(f"reading {topic} did not reach its end in {timeout:.0f}s")
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    remaining.discard(message.partition())
                    continue
                raise KafkaException(error)
            key = message.key()
            if key is not None and key.startswith(key_prefix):
                state[key] = message.value()
        return state
    finally:
        consumer.close()
