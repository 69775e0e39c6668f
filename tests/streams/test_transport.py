"""The streams transport never lets a record go unprocessed around Faust's recovery.

faust-streaming's recovery calls `app.flow_control.resume()` several times, and each call
clears the streams' queues: records already fetched are never handed to an agent, and
with nothing committed yet no seek brings them back. These tests make that happen on
purpose, with Faust's own calls, on a real broker and a real Faust app, while an agent is
slower than the fetcher so its queue holds records.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from faust.types import TP

from streams import transport
from streams.transport import Consumer, broker_urls

pytestmark = pytest.mark.integration

RECORDS = 600
PARTITIONS = 2


def stream_consumer(app: faust.App) -> Consumer:
    consumer = app.consumer
    assert isinstance(consumer, Consumer)
    return consumer


def preload(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
        future.result(30)
    # in produce order per partition even when a send is retried: the tests check order
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True}
    )
    for number in range(RECORDS):
        producer.produce(topic, value=str(number).encode(), partition=number % PARTITIONS)
    assert producer.flush(30) == 0


def faust_app(bootstrap: str, data_dir: Path, **options: Any) -> faust.App:
    """A Faust app on vcstream's transport, set up as streams.app sets up its own."""
    app = transport.App(
        f"transport-{uuid.uuid4().hex[:8]}",
        broker=broker_urls(f"kafka://{bootstrap}"),
        store="memory://",
        web_enabled=False,
        autodiscover=False,
        datadir=str(data_dir),
        consumer_auto_offset_reset="earliest",
        **options,
    )
    return app


def input_topic(app: faust.App, topic: str) -> Any:
    # as streams.app declares its inputs: commits follow ack_processed, not Faust's acks
    return app.topic(topic, value_serializer="raw", acks=False)


def resume_flow(app: faust.App) -> bool:
    """What recovery does: resume flow control, which clears every stream queue."""
    if not any(queue.qsize() for queue in list(app.flow_control._queues)):
        return False
    app.flow_control.resume()
    return True


def lose_one_queued(app: faust.App) -> bool:
    """A record Faust loses without telling anyone: taken off a stream's queue, unheld."""
    for queue in list(app.flow_control._queues):
        if queue.qsize() > 1:
            items: Any = queue._queue  # type: ignore[attr-defined]  # asyncio.Queue's deque
            items.popleft()
            return True
    return False


def hold_a_partition_revoked_meanwhile(topic: str) -> Callable[[faust.App], bool]:
    """A queued record of a partition this worker no longer has, dropped by a clear."""

    def disturb(app: faust.App) -> bool:
        consumer = stream_consumer(app)
        if not consumer.assignment():
            return False
        gone = SimpleNamespace(message=SimpleNamespace(tp=TP(topic, PARTITIONS), offset=0))
        consumer.hold_dropped([gone])
        return True

    return disturb


async def read_all(
    bootstrap: str,
    topic: str,
    data_dir: Path,
    disturb: Callable[[faust.App], bool],
    times: int,
    buffer: int = 4096,  # Faust's default stream buffer
) -> dict[str, Any]:
    app = faust_app(bootstrap, data_dir, broker_commit_interval=0.2, stream_buffer_maxsize=buffer)
    seen: dict[int, list[int]] = {}

    async def collect(stream: Any) -> None:
        consumer = stream_consumer(app)
        async for event in stream.noack().events():  # as streams.app's agents do
            if consumer.arrived(event.message):
                seen.setdefault(event.message.partition, []).append(int(event.value))
                consumer.ack_processed(event.message)
            await asyncio.sleep(0.001)  # slower than the fetcher: the queue fills

    app.agent(input_topic(app, topic), name="collect")(collect)
    await app.start()
    try:
        consumer = stream_consumer(app)
        deadline = time.monotonic() + 60
        disturbed = 0
        # what is held is let go at the fetcher's next round, which may come after the
        # last record reached the agent
        while time.monotonic() < deadline and (
            sum(map(len, seen.values())) < RECORDS or consumer.held_back()
        ):
            await asyncio.sleep(0.05)
            if disturbed < times and disturb(app):
                disturbed += 1
        return {"seen": seen, "disturbed": disturbed, "held": consumer.held_back()}
    finally:
        await app.stop()


def assert_each_record_once_in_order(seen: dict[int, list[int]]) -> None:
    for partition in range(PARTITIONS):
        expected = list(range(partition, RECORDS, PARTITIONS))
        got = seen.get(partition, [])
        missing = sorted(set(expected) - set(got))
        assert got == expected, f"partition {partition}: {len(got)} seen, missing {missing[:5]}"


def test_records_in_queues_recovery_clears_are_read_again(kafka, topic_name, tmp_path):
    topic = topic_name("transport")
    preload(kafka.bootstrap_servers, topic)

    result = asyncio.run(read_all(kafka.bootstrap_servers, topic, tmp_path, resume_flow, 3))

    assert result["disturbed"] == 3  # the queues did hold records when they were cleared
    assert_each_record_once_in_order(result["seen"])
    assert result["held"] == {}  # nothing left waiting to be read again


def test_a_record_lost_on_the_way_is_noticed_by_the_next_and_read_again(
    kafka, topic_name, tmp_path
):
    # nothing tells the consumer about these losses: arrived() sees the hole when the
    # record after it reaches the agent
    topic = topic_name("transport-hole")
    preload(kafka.bootstrap_servers, topic)

    result = asyncio.run(read_all(kafka.bootstrap_servers, topic, tmp_path, lose_one_queued, 3))

    assert result["disturbed"] == 3
    assert_each_record_once_in_order(result["seen"])
    assert result["held"] == {}


def test_a_held_partition_revoked_before_its_reread_is_left_to_its_next_owner(
    kafka, topic_name, tmp_path
):
    # seeking a partition that is not assigned would fail the fetcher; it is skipped
    topic = topic_name("transport-revoked")
    preload(kafka.bootstrap_servers, topic)

    result = asyncio.run(
        read_all(
            kafka.bootstrap_servers,
            topic,
            tmp_path,
            hold_a_partition_revoked_meanwhile(topic),
            1,
        )
    )

    assert result["disturbed"] == 1
    assert_each_record_once_in_order(result["seen"])
    assert result["held"] == {}


async def read_through_small_buffer(bootstrap: str, topic: str, data_dir: Path) -> dict[str, Any]:
    # a buffer full most of the time: hand-overs wait for room
    app = faust_app(bootstrap, data_dir, stream_buffer_maxsize=8)
    seen: dict[int, list[int]] = {}

    async def collect(stream: Any) -> None:
        consumer = stream_consumer(app)
        async for event in stream.noack().events():
            if consumer.arrived(event.message):
                seen.setdefault(event.message.partition, []).append(int(event.value))
                consumer.ack_processed(event.message)
            await asyncio.sleep(0.0005)

    app.agent(input_topic(app, topic), name="collect")(collect)
    await app.start()
    try:
        deadline = time.monotonic() + 60
        while sum(map(len, seen.values())) < RECORDS and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return {"seen": seen}
    finally:
        await app.stop()


def test_hand_over_to_a_full_stream_buffer_waits_and_loses_nothing(kafka, topic_name, tmp_path):
    # records wait for room in the stream's buffer, and every one arrives once, in
    # offset order per partition
    topic = topic_name("transport-full")
    preload(kafka.bootstrap_servers, topic)

    result = asyncio.run(read_through_small_buffer(kafka.bootstrap_servers, topic, tmp_path))

    assert_each_record_once_in_order(result["seen"])


def stop_flow_mid_batch(app: faust.App) -> bool:
    """Stop the consumer's flow for a moment while its fetch loop is mid-batch (waiting
    for room in a small stream buffer): Faust's getmany abandons the rest of the batch,
    though aiokafka's position has moved past it."""
    consumer = stream_consumer(app)
    if not consumer.assignment():
        return False
    consumer.stop_flow()
    asyncio.get_running_loop().call_later(0.05, consumer.resume_flow)
    return True


def test_records_a_batch_left_unhanded_are_read_again(kafka, topic_name, tmp_path):
    topic = topic_name("transport-abandoned")
    preload(kafka.bootstrap_servers, topic)

    result = asyncio.run(
        read_all(kafka.bootstrap_servers, topic, tmp_path, stop_flow_mid_batch, 5, buffer=8)
    )

    assert result["disturbed"] == 5
    assert_each_record_once_in_order(result["seen"])
    assert result["held"] == {}
