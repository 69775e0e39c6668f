"""The worker's outputs written into aiokafka record batches, one append per record.

aiokafka's `send()` costs, per record, a coroutine, a metadata wait, a partitioner call,
a size check and a future (Faust's `Producer.send` wraps it in another coroutine): the
profile put that near a tenth of the worker's CPU at two records per event. aiokafka's
public batch API (`create_batch`, `send_batch`, `BatchBuilder.append`) takes a record
with one call into its record builder instead. A batch is handed to aiokafka as soon as
its first record is in and stays open (as aiokafka's `BatchBuilder.close` describes), so
later records join it until aiokafka's sender takes it: aiokafka's own linger, batch
size and one batch in flight per partition still decide when records leave, as for
`send()`.

Every record of a batch shares the batch's future: an event is finished once the
futures of the batches holding its records are done (`streams.delivery`), and one
failure fails every event in the batch, none of which is then acked (the worker stops
and reads them again). Records keep their order per partition: a partition has one open
batch, and a new one is handed over only after the one before it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from schemas.record import KafkaRecord
from streams.oversize import FRAMING_BYTES

Partitioner = Callable[[bytes | None, Sequence[int], Sequence[int]], int]


class _Open:
    """A partition's batch still taking records; `delivered` is done when Kafka has it."""

    __slots__ = ("builder", "delivered", "handed", "limit")

    def __init__(self, builder: BatchBuilder, delivered: asyncio.Future[Any], limit: int) -> None:
        self.builder = builder
        self.delivered = delivered
        self.limit = limit  # bytes the topic takes in one batch (0: aiokafka's batch size)
        self.handed: asyncio.Future[None] | None = None  # set once aiokafka has the batch


class Batches:
    def __init__(
        self,
        producer: Callable[[], AIOKafkaProducer],
        partitioner: Partitioner,
        request_limit: int,
        topic_limits: dict[str, int],
        batch_size: int,
    ) -> None:
        self._producer = producer
        self._partitioner = partitioner
        self._request_limit = request_limit  # aiokafka's max_request_size
        # A batch refuses a record past its size unless it is the batch's first, so only
        # a first record can be larger than a request, unless a request is the smaller
        self._check_every_record = request_limit < batch_size
        self._topic_limits = topic_limits  # max.message.bytes below the request limit
        self._partitions: dict[str, tuple[int, ...]] = {}
        self._open: dict[tuple[str, int], _Open] = {}

    def append(self, topic: str, record: KafkaRecord) -> asyncio.Future[Any] | None:
        """The record joined to its partition's open batch, without awaiting anything:
        the batch's future, or None when it needs `send` (no open batch, or it is full).
        MessageSizeTooLargeError, not sent, as `send` raises it."""
        partitions = self._partitions.get(topic)
        if partitions is None:
            return None
        key, value, headers = record.key, record.value, record.headers
        batch = self._open.get((topic, self._partitioner(key, partitions, partitions)))
        if batch is None:
            return None
        if self._check_every_record:
            self._check_size(key, value, headers)
        if batch.limit:
            size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers)
            if batch.builder.size() + size + FRAMING_BYTES > batch.limit:
                batch.builder.close()  # the broker would refuse the batch as a whole
                return None
        if batch.builder.append(timestamp=None, key=key, value=value, headers=headers) is None:
            return None  # full: `send` hands a new batch over behind it
        return batch.delivered

    async def send(self, topic: str, record: KafkaRecord) -> asyncio.Future[Any]:
        """A future done when Kafka has the record (MessageSizeTooLargeError, not sent,
        for a record larger than a request takes, as aiokafka's `send()` raises)."""
        delivered = self.append(topic, record)
        if delivered is not None:
            return delivered
        key, value, headers = record.key, record.value, record.headers
        partitions = self._partitions.get(topic)
        if partitions is None:
            partitions = await self._load_partitions(topic)
        tp = (topic, self._partitioner(key, partitions, partitions))
        batch = self._open.get(tp)  # closed or full, if any: the new one goes behind it
        self._check_size(key, value, headers)
        producer = self._producer()
        loop = asyncio.get_running_loop()
        limit = self._topic_limits.get(topic, 0)
        fresh = _Open(producer.create_batch(), loop.create_future(), limit)
        fresh.builder.append(timestamp=None, key=key, value=value, headers=headers)
        # registered before handing it over, which may wait: records sent meanwhile join
        # this batch, behind this one, rather than a batch of their own ahead of it
        self._open[tp] = fresh
        before = batch.handed if batch is not None else None
        fresh.handed = loop.create_future()
        try:
            if before is not None and not before.done():
                await asyncio.shield(before)
            future = await producer.send_batch(fresh.builder, topic, partition=tp[1])
        except BaseException as exc:
            fresh.builder.close()
            if self._open.get(tp) is fresh:
                del self._open[tp]
            _fail(fresh.delivered, exc)
            raise
        finally:
            fresh.handed.set_result(None)
        future.add_done_callback(lambda done: _copy(done, fresh.delivered))
        return fresh.delivered

    def _check_size(self, key: bytes | None, value: bytes | None, headers: Any) -> None:
        # as aiokafka's send() checks, with its message
        size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers)
        if size > self._request_limit:
            raise MessageSizeTooLargeError(
                f"The message is {size} bytes when serialized which is larger than the "
                "maximum request size you have configured with the max_request_size "
                "configuration"
            )

    async def _load_partitions(self, topic: str) -> tuple[int, ...]:
        # a tuple: the partitioner remembers placements per partition list as a tuple
        found = tuple(sorted(await self._producer().partitions_for(topic)))
        self._partitions[topic] = found
        return found

    async def refresh_partitions(self) -> None:
        """Read the output topics' partition counts again (a topic may have grown)."""
        for topic in list(self._partitions):
            await self._load_partitions(topic)

    def close(self) -> None:
        """No more records into the open batches (before a flush, at a stop)."""
        for batch in self._open.values():
            batch.builder.close()
        self._open.clear()


def _copy(source: asyncio.Future[Any], target: asyncio.Future[Any]) -> None:
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif source.exception() is not None:
        target.set_exception(source.exception())  # type: ignore[arg-type]
    else:
        target.set_result(None)


def _fail(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
