"""Read a compacted topic to its end: the newest value of every key (None: tombstone).

Read with `isolation.level=read_committed` after this process's transactional producer
has initialised, so a transaction a killed predecessor left open has been aborted by
then and its records are never taken for state.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition

from vcstream.kafka import client_config
from vcstream.settings.kafka import KafkaSettings


class TopicReadTimeout(Exception):
    """The topic's end was not reached in time (Kafka slow or unavailable)."""


def read_to_end(config: dict[str, Any], topic: str, timeout: float = 60) -> Iterator[Message]:
    """Every committed record of `topic`, up to the end it had when reading began.

    The end is each partition's last stable offset, asked for up front: the
    end-of-partition event cannot be relied on, as a producer committing transactions
    back to back keeps every fetch non-empty and the event never comes.
    """
    consumer = Consumer(
        {
            **config,
            # never commits: the group only names the client in broker logs
            "group.id": f"vcstream-reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        },
        logger=logging.getLogger("librdkafka"),
    )
    try:
        metadata = consumer.list_topics(topic, timeout=timeout)
        described = metadata.topics.get(topic)
        if described is None or described.error is not None:
            raise KafkaException(described.error if described else f"no topic {topic}")
        ends: dict[int, int] = {}
        for partition in described.partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout, cached=False
            )
            if high > low:
                ends[partition] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        deadline = time.monotonic() + timeout
        while ends:
            if time.monotonic() > deadline:
                raise TopicReadTimeout(f"reading {topic} did not reach its end in {timeout:.0f}s")
            message = consumer.poll(0.2)
            if message is not None:
                error = message.error()
                if error is not None:
                    raise KafkaException(error)
                end = ends.get(message.partition() or 0, -1)
                if (message.offset() or 0) < end:
                    yield message
            # the position moves past transaction markers too, up to the stable end
            for tp in consumer.position([TopicPartition(topic, p) for p in list(ends)]):
                if tp.offset >= ends[tp.partition]:
                    del ends[tp.partition]
    finally:
        consumer.close()


def read_compacted(
    kafka: KafkaSettings,
    topic: str,
    key_prefix: bytes = b"",
    timeout: float = 60,
) -> dict[bytes, bytes | None]:
    """Every key starting with `key_prefix` and its newest committed value."""
    state: dict[bytes, bytes | None] = {}
    for message in read_to_end(client_config(kafka), topic, timeout):
        key = message.key()
        if key is not None and key.startswith(key_prefix):
            state[key] = message.value()
    return state
