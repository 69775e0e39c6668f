"""The Faust app: one agent per input topic, the alarm-definitions global table, a timer
that releases alarm events waiting for their definition.

Delivery is at least once without Faust's `exactly_once`: the stream does not ack an
event until Kafka has acknowledged every record made from it (outputs or dead letter),
and Faust commits an offset only when every offset before it is acked, flushing its
producer first. A send that fails crashes the worker before the offset is committed, so
after a restart the event is processed again; output ids are derived from input ids,
which makes the repeat a detectable duplicate.

Run it with `vcstream streams worker --config FILE`, or the Faust way:
`VCSTREAM_CONFIG=FILE faust -A streams.app worker`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import faust
from aiokafka import AIOKafkaProducer
from cloudevents.core.v1.event import CloudEvent

from schemas.record import KafkaRecord
from streams import metrics
from streams.acks import OrderedAcks, Pending
from streams.api import AnyProcessor
from streams.definitions import DefinitionIndex
from streams.delivery import Deliveries
from streams.enrich import AlarmRef, enriched, unenriched
from streams.monitor import QuietMonitor
from streams.partitioner import KeyPartitioner
from streams.pipeline import Inlined, Output, Pipeline
from streams.state import create_faust_tables, faust_current_event, tables_by_input
from streams.transport import Consumer, broker_urls, hold_what_flow_control_clears
from vcstream.kafka import faust_broker_options
from vcstream.observability import Flag
from vcstream.settings import Settings

log = logging.getLogger(__name__)

RELEASE_INTERVAL = 0.1  # seconds between checks of alarm events waiting for a definition
# Outputs fan out over every partition of several topics, so a batch per partition holds
# what arrived within the linger: at 5 to 10 ms that was a record or two, and aiokafka's
# cost per batch and per request dominated its cost per record. 50 ms measured ~20% less
# CPU per event than 10 ms (100 ms: no better), for tens of ms of added latency.
PRODUCER_LINGER = 0.05  # seconds
PRODUCER_MAX_BATCH_BYTES = 512 * 1024  # per partition: one batch takes a whole linger


@dataclass(slots=True)
class Waiting:
    """An alarm event read but not yet emitted: its offset stays uncommitted meanwhile."""

    source: Pending  # the faust Event, tracked for in-order acks
    record: KafkaRecord
    event: CloudEvent
    ref: AlarmRef
    deadline: float
    started: float
    inlined: Inlined | None = None  # what inline processors made of it, as it was read


class StreamsApp:
    def __init__(
        self,
        settings: Settings,
        processors: Sequence[AnyProcessor],
        definition_partitions: int = 1,
        health: Flag | None = None,
        input_partitions: dict[str, int] | None = None,
    ) -> None:
        self.settings = settings
        self.pipeline = Pipeline(settings, processors)
        self.health = health or Flag()
        options = faust_broker_options(settings.kafka)
        options["broker"] = broker_urls(options["broker"])
        streams = settings.streams
        session_timeout = streams.session_timeout.total_seconds()
        self.app = faust.App(
            streams.app_id,
            **options,
            store="memory://",
            web_enabled=False,
            autodiscover=False,
            datadir=streams.data_dir,
            broker_commit_interval=streams.commit_interval.total_seconds(),
            consumer_auto_offset_reset="earliest",
            broker_session_timeout=session_timeout,
            broker_heartbeat_interval=min(3.0, session_timeout / 3),
            producer_acks=-1,
            producer_linger=PRODUCER_LINGER,
            producer_max_batch_size=PRODUCER_MAX_BATCH_BYTES,
            producer_partitioner=KeyPartitioner(),
            monitor=QuietMonitor(),
        )
        hold_what_flow_control_clears(self.app)
        # Definitions are copied from the producer's compacted topic into a global table
        # (its own changelog, restored at start, so every worker holds all of them). The
        # producer's topic cannot be the changelog itself: it is written in transactions,
        # and Faust's recovery waits for an offset that is a transaction marker, forever.
        self.definitions = self.app.GlobalTable(
            "alarm-definitions",
            partitions=definition_partitions,
            # the default changelog name (faust's assignor looks tables up by it), with raw
            # keys and values: the table serializers do not reach the changelog's recovery
            changelog_topic=self.app.topic(
                f"{streams.app_id}-alarm-definitions-changelog",
                key_serializer="raw",
                value_serializer="raw",
                partitions=definition_partitions,
                compacting=True,
                internal=True,
            ),
            # the multi-instance recovery-loop workaround faust-streaming documents
            recovery_buffer_size=1,
            help="Alarm definitions by <vCenter instance UUID>/<alarm moref>, Avro values.",
        )
        definitions_topic = self.app.topic(
            settings.topics.alarm_definitions, key_serializer="raw", value_serializer="raw"
        )
        self.app.agent(definitions_topic, name="streams.alarm-definitions")(self._follow)
        self.index = DefinitionIndex(self.definitions)
        # processors' tables (streams.state), co-partitioned with their input topics
        tables = tables_by_input(processors, settings.topics.events)
        self.tables = create_faust_tables(self.app, tables, input_partitions or {})
        self.waiting: list[Waiting] = []
        self.acks = OrderedAcks(
            lambda: self.app.consumer_generation_id,
            lambda source: self._consumer().ack_processed(source.message),
        )
        self.deliveries = Deliveries(self._finished, self.delivery_failed)
        revoked_signal: Any = self.app.on_partitions_revoked
        revoked_signal.connect(self._on_revoked)
        self._crashing: asyncio.Future[Any] | None = None
        for topic in self.pipeline.input_topics:
            channel = self.app.topic(topic, key_serializer="raw", value_serializer="raw")
            self.app.agent(channel, name=f"streams.{topic}")(self._agent_for(topic))
        self.app.timer(RELEASE_INTERVAL, name="streams.release-waiting")(self._release_waiting)

    async def _follow(self, stream: Any) -> None:
        consumer = self._consumer()
        async for source in stream.noack().events():
            if not consumer.arrived(source.message):
                continue  # read again later (streams.transport)
            if source.value and source.key is not None:
                self.definitions[source.key] = source.value
            elif source.key is not None:  # tombstone: the alarm was removed
                self.definitions.pop(source.key, None)
            # (a record without a key is not a definition: the topic is keyed by alarm)
            consumer.ack_processed(source.message)

    def _consumer(self) -> Consumer:
        consumer = self.app.consumer
        assert isinstance(consumer, Consumer), "the app runs on streams.transport"
        return consumer

    def _agent_for(self, topic: str) -> Any:
        async def consume(stream: Any) -> None:
            async for source in stream.noack().events():
                await self.handle(source, topic)

        consume.__name__ = consume.__qualname__ = f"consume_{topic.replace('.', '_')}"
        return consume

    async def _on_revoked(self, sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        revoked = set(args[0] if args else kwargs.get("revoked", ()))
        self.acks.forget(revoked)
        self.waiting = [w for w in self.waiting if w.source.source.message.tp not in revoked]
        metrics.PENDING.set(len(self.waiting))

    async def handle(self, event: Any, topic: str) -> None:
        if self.acks.is_stale(event):
            return  # read before a rebalance; the partition's owner reads it again
        if not self._consumer().arrived(event.message):
            return  # an earlier record went missing on the way: both are read again
        started = time.monotonic()
        source = self.acks.track(event)
        record = _record_of(event, topic)
        decoded = self.pipeline.decode(record)
        if isinstance(decoded, Output):
            await self._emit(source, [decoded], started)
            return
        # Inline processors run here, as the record is read: in offset order, with the
        # record as Faust's current event (a table write goes to its partition), also for
        # an alarm that then waits for its definition.
        inlined = self.pipeline.inline(decoded, record, topic)
        event = inlined.event
        ref = self.pipeline.alarm_to_enrich(event, topic)
        if ref is not None and event is not None:
            definition = self.index.lookup(ref)
            if definition is None:
                wait = self.pipeline.enrichment.wait_for_definition.total_seconds()
                waiting = Waiting(source, record, event, ref, started + wait, started, inlined)
                self.waiting.append(waiting)
                metrics.PENDING.set(len(self.waiting))
                return
            event = self._enriched(event, definition)
        unchanged = event is decoded
        outputs = self.pipeline.outputs(event, record, topic, unchanged, inlined)
        await self._emit(source, outputs, started)

    def _report_health(self) -> None:
        # ready once the definitions are loaded: before that, every alarm event would wait
        if self.app.in_recovery or not self._recovery().completed.is_set():
            self.health.down("recovering alarm definitions")
        elif self.app.rebalancing:
            self.health.down("rebalancing")
        elif self.app.crash_reason is None:
            self.health.ok()

    def _recovery(self) -> Any:
        return self.app.tables.recovery  # type: ignore[attr-defined]  # not in TableManagerT

    def _enriched(self, event: CloudEvent, definition: dict[str, Any]) -> CloudEvent:
        metrics.ENRICHED.inc()
        return enriched(event, definition, self.pipeline.enrichment.type_suffix)

    async def _release_waiting(self) -> None:
        self._report_health()
        self.deliveries.settle()  # what completed since the last event
        if not self.waiting:
            return
        now = time.monotonic()
        # Take the list and put back what still waits: the sends below can yield (metadata
        # of a new topic, a full buffer), and meanwhile the agent adds alarms and a
        # revocation replaces the list. Writing back a list built before those awaits
        # dropped every alarm added meanwhile: never emitted, never acked, lost.
        pending, self.waiting = self.waiting, []
        for item in pending:
            # No check of the current assignment here: during a rebalance it is briefly
            # empty, and dropping an alarm then lost it when the partition came back to
            # this worker. Revocation purges what it must (`_on_revoked`); anything of a
            # revoked partition still here is emitted as a harmless duplicate and, being
            # of an old generation, never acked.
            definition = self.index.lookup(item.ref)
            if definition is not None:
                event = self._enriched(item.event, definition)
            elif now >= item.deadline:
                metrics.ENRICHMENT_MISSING.inc()
                log.info("no definition for %s/%s: emitted unenriched", *_ref_text(item.ref))
                event = unenriched(item.event)
            else:
                self.waiting.append(item)
                continue
            # the record as Faust's current event, as in its agent: processors' tables
            with faust_current_event(item.source.source):
                topic = self.pipeline.events_topic
                outputs = self.pipeline.outputs(event, item.record, topic, inlined=item.inlined)
            await self._emit(item.source, outputs, item.started)
        metrics.PENDING.set(len(self.waiting))

    async def _emit(self, source: Pending, outputs: list[Output], started: float) -> None:
        # Straight to the aiokafka producer under Faust's, not through a faust Topic: the
        # records are bytes already, and Topic.send wraps each one in a FutureMessage,
        # sensor calls and a callback task, Faust's Producer.send in signals and type
        # checks, which profiling showed cost more than the rest of the event. It is still
        # Faust's producer, so the flush before each offset commit covers these records.
        producer = await self._kafka_producer()
        futures = [
            await producer.send(
                output.topic,
                output.record.value,
                key=output.record.key,
                headers=output.record.headers,
            )
            for output in outputs
        ]
        self.deliveries.add(source, futures, started)
        self.deliveries.settle()

    async def _kafka_producer(self) -> AIOKafkaProducer:
        # looked up each time, not kept: whichever aiokafka producer Faust's has now
        faust_producer: Any = self.app.producer
        producer: AIOKafkaProducer | None = faust_producer._producer
        if producer is None:
            await self.app.maybe_start_producer()
            producer = faust_producer._ensure_producer()
        return producer

    def _finished(self, source: Pending, started: float) -> None:
        self.acks.finish(source)
        metrics.LATENCY.observe(time.monotonic() - started)

    def delivery_failed(self, error: BaseException) -> None:
        # the source offset stays unacked; crashing before the next commit means a
        # restart reads it again instead of skipping it
        log.error("could not write to Kafka, stopping the worker: %r", error)
        self.health.down(f"kafka write failed: {type(error).__name__}")
        self._crashing = asyncio.ensure_future(self.app.crash(error))


def _record_of(source: Any, topic: str) -> KafkaRecord:
    message = source.message
    headers = message.headers or []
    if isinstance(headers, dict):
        headers = list(headers.items())
    return KafkaRecord(
        value=source.value,
        key=source.key,
        headers=[(name, value if value is not None else b"") for name, value in headers],
        topic=topic,
        partition=message.partition,
        offset=message.offset,
        timestamp_ms=int(message.timestamp * 1000) if message.timestamp else None,
    )


def _ref_text(ref: AlarmRef) -> tuple[str, str]:
    return ref.source, ref.alarm


def build(settings: Settings, health: Flag | None = None) -> StreamsApp:
    """The app for these settings, with topics created and user processors discovered."""
    from streams.discovery import processors_for
    from streams.topics import partition_count, prepare_topics

    processors = processors_for(settings.streams, settings.topics.events)
    pipeline = Pipeline(settings, processors)
    prepare_topics(settings, pipeline.output_topics + pipeline.input_topics)
    partitions = partition_count(settings, settings.topics.alarm_definitions)
    # a processor's table has a changelog partition per partition of its input topic
    stateful = tables_by_input(processors, settings.topics.events)
    inputs = {topic: partition_count(settings, topic) for topic in stateful}
    return StreamsApp(settings, processors, partitions, health, inputs)


def __getattr__(name: str) -> Any:
    # `faust -A streams.app worker`: the app is built on first access, from the file
    # named by VCSTREAM_CONFIG (and VCSTREAM_* overrides), like the vcstream command does
    if name != "app":
        raise AttributeError(name)
    from vcstream.settings import load_settings

    built = build(load_settings(os.environ.get("VCSTREAM_CONFIG"))).app
    globals()["app"] = built
    return built
