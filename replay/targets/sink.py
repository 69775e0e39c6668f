"""Replay into a sink connector (knative, slack, audit in PostgreSQL), through the sinks
runtime's BatchDelivery: the same retries, backoff and dead letters as the live sink.
Audit files are written by the replay itself (`replay.targets.auditfiles`).

Dead-lettered records are recognised by the source position the dead-letter headers
carry, so the report counts them apart from written records and leaves them out of
the checksum.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from replay.targets.base import Position, ReplayItem, ReplayTarget
from schemas.deadletter import error_context
from schemas.record import KafkaRecord
from sinks.base import SinkEvent

if TYPE_CHECKING:
    from sinks.base import Sink
    from sinks.deadletters import DeadLetterWriter


class _RecordingDeadLetters:
    """Passes dead letters on, noting which source positions they were."""

    def __init__(self, writer: DeadLetterWriter) -> None:
        self.writer = writer
        self.positions: set[Position] = set()

    def send(self, record: KafkaRecord) -> None:
        context = error_context(record)
        if "partition" in context and "offset" in context:
            self.positions.add((int(context["partition"]), int(context["offset"])))
        self.writer.send(record)

    async def flush(self) -> None:
        await self.writer.flush()


class SinkTarget(ReplayTarget):
    def __init__(self, sink: Sink, dead_letters: DeadLetterWriter, start: bool = True) -> None:
        from sinks.delivery import BatchDelivery, type_matcher

        self.sink = sink
        self.name = sink.name
        self.batch_records = sink.settings.batch.max_records
        self._dead_letters = _RecordingDeadLetters(dead_letters)
        self._writer = dead_letters
        self._types = type_matcher(sink.settings.types)
        self._delivery = BatchDelivery(sink, self._dead_letters)
        self._loop = asyncio.Runner()
        if start:
            self._loop.run(sink.start())

    def accepts(self, event_type: str) -> bool:
        return self._types.fullmatch(event_type) is not None

    def write(self, items: Sequence[ReplayItem]) -> set[Position]:
        by_partition: dict[int, list[SinkEvent]] = {}
        for item in items:
            event = SinkEvent(None, item.record)
            event.view = item.view  # its attributes, read once by the replay, not again
            by_partition.setdefault(item.position[0], []).append(event)
        self._dead_letters.positions = set()
        self._loop.run(self._deliver(list(by_partition.values())))
        # a replay's batch is durable when `write` returns (its position is saved next):
        # a sink that holds records open (audit files) closes them now
        self._loop.run(self.sink.flush())
        return self._dead_letters.positions

    async def _deliver(self, batches: list[list[SinkEvent]]) -> None:
        # one batch per partition; the sink contract allows partitions concurrently
        await asyncio.gather(*(self._delivery.deliver_decoded(batch) for batch in batches))

    def close(self) -> None:
        try:
            self._loop.run(self.sink.close())
        finally:
            self._loop.close()
            self._writer.close()
