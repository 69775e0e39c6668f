"""Outputs written as aiokafka record batches (streams.batches), on the real broker."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError, MessageSizeTooLargeError
from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

from schemas.record import KafkaRecord
from streams.app import PRODUCER_LINGER, PRODUCER_MAX_BATCH_BYTES, StreamsApp
from streams.batches import Batches
from streams.partitioner import KeyPartitioner
from tests.streams.helpers import consume
from vcstream.settings import Settings


def create_topic(bootstrap: str, name: str, partitions: int, **config: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = NewTopic(name, num_partitions=partitions, replication_factor=1, config=config)
    admin.create_topics([topic])[name].result(30)


def settings_for(bootstrap: str) -> Settings:
    return Settings.model_validate({"kafka": {"bootstrapServers": bootstrap}})


def record(key: int, size: int = 100, index: int = 0) -> KafkaRecord:
    return KafkaRecord(
        value=f"{index:06d}".encode() + b"x" * size,
        key=f"vc/VirtualMachine:vm-{key}".encode(),
        headers=[("ce_id", f"id-{index}".encode())],
    )


def value_of(item: KafkaRecord) -> bytes:
    assert item.value is not None
    return item.value


def index_of(item: KafkaRecord) -> int:
    return int(value_of(item)[:6])


async def with_producer(bootstrap: str, scenario: Any, **options: Any) -> Any:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks=-1,
        linger_ms=int(PRODUCER_LINGER * 1000),
        max_batch_size=PRODUCER_MAX_BATCH_BYTES,  # as the worker's: more than the topic takes
        **options,
    )
    await producer.start()
    try:
        return await scenario(producer)
    finally:
        await producer.stop()


def test_records_keep_their_order_and_placement_and_share_their_batch_futures(kafka, topic_name):
    topic = topic_name("out")
    create_topic(kafka.bootstrap_servers, topic, 3)
    sent = [record(index % 30, index=index) for index in range(600)]

    async def scenario(producer: AIOKafkaProducer) -> set[int]:
        batches = Batches(
            lambda: producer, KeyPartitioner(), 1_000_000, {}, PRODUCER_MAX_BATCH_BYTES
        )
        futures = [await batches.send(topic, item) for item in sent]
        await asyncio.gather(*futures)
        return {id(future) for future in futures}

    distinct = asyncio.run(with_producer(kafka.bootstrap_servers, scenario))
    assert len(distinct) < len(sent) / 10  # one future per batch, not per record
    written = consume(settings_for(kafka.bootstrap_servers), topic, len(sent), settle=1.0)
    assert sorted(map(value_of, written)) == sorted(map(value_of, sent))
    default = DefaultPartitioner()
    by_key: dict[bytes | None, list[bytes]] = {}
    for item in written:
        assert item.partition == default(item.key, [0, 1, 2], [0, 1, 2])
        assert item.headers == [("ce_id", f"id-{index_of(item)}".encode())]
        by_key.setdefault(item.key, []).append(value_of(item))
    for key, values in by_key.items():
        assert values == sorted(values), key  # written in the order sent, per key


def test_record_larger_than_a_request_is_refused_and_the_rest_go_on(kafka, topic_name):
    topic = topic_name("out")
    create_topic(kafka.bootstrap_servers, topic, 1)

    async def scenario(producer: AIOKafkaProducer) -> None:
        batches = Batches(lambda: producer, KeyPartitioner(), 20_000, {}, PRODUCER_MAX_BATCH_BYTES)
        first = await batches.send(topic, record(1, index=1))
        with pytest.raises(MessageSizeTooLargeError, match="max_request_size"):
            await batches.send(topic, record(1, size=30_000, index=2))
        last = await batches.send(topic, record(1, index=3))
        await asyncio.gather(first, last)

    asyncio.run(with_producer(kafka.bootstrap_servers, scenario, max_request_size=20_000))
    written = consume(settings_for(kafka.bootstrap_servers), topic, 2, settle=1.0)
    assert [index_of(item) for item in written] == [1, 3]


def test_batches_stay_within_a_topic_that_takes_less_than_a_batch(kafka, topic_name):
    """A topic's max.message.bytes bounds a whole record batch: without the topic's limit
    the broker refuses the batch, and every record in it fails with it."""
    limited = {"max.message.bytes": "20000"}
    topic, unbounded = topic_name("out"), topic_name("unbounded")
    create_topic(kafka.bootstrap_servers, topic, 1, **limited)
    create_topic(kafka.bootstrap_servers, unbounded, 1, **limited)
    sent = [record(1, size=4_000, index=index) for index in range(20)]

    async def scenario(producer: AIOKafkaProducer) -> list[BaseException | None]:
        batches = Batches(
            lambda: producer, KeyPartitioner(), 1_000_000, {topic: 20_000}, PRODUCER_MAX_BATCH_BYTES
        )
        await asyncio.gather(*[await batches.send(topic, item) for item in sent])
        failing = Batches(
            lambda: producer, KeyPartitioner(), 1_000_000, {}, PRODUCER_MAX_BATCH_BYTES
        )
        futures = [await failing.send(unbounded, item) for item in sent]
        await asyncio.wait(futures)
        return [future.exception() for future in futures]

    errors = asyncio.run(with_producer(kafka.bootstrap_servers, scenario))
    written = consume(settings_for(kafka.bootstrap_servers), topic, len(sent), settle=1.0)
    assert [index_of(item) for item in written] == list(range(20))
    assert all(isinstance(error, KafkaError) for error in errors[:2]), errors


def test_a_batch_aiokafka_does_not_take_fails_its_records(kafka, topic_name):
    topic = topic_name("out")
    create_topic(kafka.bootstrap_servers, topic, 1)

    async def scenario(producer: AIOKafkaProducer) -> None:
        batches = Batches(
            lambda: producer, KeyPartitioner(), 1_000_000, {}, PRODUCER_MAX_BATCH_BYTES
        )
        await (await batches.send(topic, record(1, index=1)))
        await producer.stop()  # its accumulator now refuses new batches
        batches.close()
        with pytest.raises(KafkaError):
            await asyncio.wait_for(batches.send(topic, record(1, index=2)), 30)

    asyncio.run(with_producer(kafka.bootstrap_servers, scenario))


def test_faust_runs_the_aiokafka_producer_the_batches_are_written_with(kafka):
    """Guard of the private touch point `Producer._ensure_producer` (faust-streaming
    0.15.3): the worker's batches go through the producer Faust flushes before commits."""

    async def scenario() -> None:
        app = faust.App("batches-guard", broker=f"kafka://{kafka.bootstrap_servers}")
        await app.producer.start()
        try:
            producer = StreamsApp._aiokafka_producer(SimpleNamespace(app=app))  # type: ignore[arg-type]
            assert isinstance(producer, AIOKafkaProducer)
            assert producer is app.producer._producer  # type: ignore[attr-defined]
        finally:
            await app.producer.stop()

    asyncio.run(scenario())


def test_a_topic_that_grew_places_keys_anew_after_a_refresh(kafka, topic_name):
    topic = topic_name("out")
    create_topic(kafka.bootstrap_servers, topic, 2)
    keys = [record(key) for key in range(40)]

    async def scenario(producer: AIOKafkaProducer) -> set[int]:
        batches = Batches(
            lambda: producer, KeyPartitioner(), 1_000_000, {}, PRODUCER_MAX_BATCH_BYTES
        )
        await asyncio.gather(*[await batches.send(topic, item) for item in keys])
        admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
        admin.create_partitions([NewPartitions(topic, 4)])[topic].result(30)
        # create_partitions returns before every broker's metadata holds the new ones
        for _ in range(100):
            await producer.client.force_metadata_update()
            if len(producer.client.cluster.partitions_for_topic(topic) or ()) == 4:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the producer's metadata never showed 4 partitions")
        await batches.refresh_partitions()
        await asyncio.gather(*[await batches.send(topic, item) for item in keys])
        written = consume(settings_for(kafka.bootstrap_servers), topic, 80, settle=1.0)
        return {item.partition for item in written if item.partition is not None}

    partitions = asyncio.run(with_producer(kafka.bootstrap_servers, scenario))
    assert partitions == {0, 1, 2, 3}  # before the refresh only 0 and 1 took records


def test_partition_counts_not_read_again_leave_the_worker_running(caplog):
    async def refuse() -> None:
        raise KafkaTimeoutError()

    stub = SimpleNamespace(batches=SimpleNamespace(refresh_partitions=refuse))
    with caplog.at_level(logging.DEBUG, logger="streams.app"):
        asyncio.run(StreamsApp._refresh_partitions(stub))  # type: ignore[arg-type]
    assert "output partitions not read again" in caplog.text
