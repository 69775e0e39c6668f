"""The Faust app: one agent per input topic, the alarm definitions (read by every worker
from the producer's topic), a timer that releases alarm events waiting for their
definition.

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
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import faust
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from cloudevents.core.v1.event import CloudEvent
from faust.app.base import BootStrategy
from faust.transport.drivers.aiokafka import Producer as FaustProducer

from schemas.errors import InvalidRecord
from schemas.record import KafkaRecord
from streams import metrics, oversize, transport
from streams.acks import OrderedAcks, Pending
from streams.api import AnyProcessor
from streams.batches import Batches
from streams.definitions import DefinitionIndex
from streams.definitions_reader import DefinitionsReader
from streams.delivery import Deliveries
from streams.enrich import AlarmRef, enriched, unenriched
from streams.faust_kafka import faust_broker_options
from streams.monitor import QuietMonitor
from streams.partitioner import KeyPartitioner
from streams.pipeline import Inlined, Output, Pipeline
from streams.reading import Reading, record_of, sdk_event
from streams.state import create_faust_tables, faust_current_event, tables_by_input
from streams.transport import Consumer, broker_urls
from vcstream.logging import logging_config
from vcstream.observability import Flag
from vcstream.settings import Settings

log = logging.getLogger(__name__)

RELEASE_INTERVAL = 0.1  # seconds between checks of alarm events waiting for a definition
PARTITIONS_REFRESH = 30.0  # seconds between reads of the output topics' partition counts
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
    event: CloudEvent | Reading
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
        message_limits: dict[str, int] | None = None,
    ) -> None:
        self.settings = settings
        self.pipeline = Pipeline(settings, processors)
        self.health = health or Flag()
        options = faust_broker_options(settings.kafka)
        options["broker"] = broker_urls(options["broker"])
        partitioner = KeyPartitioner()
        streams = settings.streams
        session_timeout = streams.session_timeout.total_seconds()
        self.app = _App(
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
            producer_partitioner=partitioner,
            monitor=QuietMonitor(),
            # Stopping commits what the agents finished (`_write_and_commit`) and leaves
            # the rest to the partition's next owner. Waiting for every record handed to
            # a stream instead (Faust's default) waits on a backlog, and on records the
            # transport refused and will never ack: SIGTERM then hung until SIGKILL.
            stream_wait_empty=False,
            logging_config=logging_config(settings.logging),
            Worker=_Worker,
        )
        self.app.on_before_shutdown.connect(self._write_and_commit)
        # Topics that take less than the producer sends (streams.oversize): the broker
        # would refuse a larger record's whole batch, good records batched with it too.
        # Past the producer's own limit, aiokafka refuses the record as it is sent.
        request_limit = int(self.app.conf.producer_max_request_size)
        self.limits = {
            topic: limit for topic, limit in (message_limits or {}).items() if limit < request_limit
        }
        self.dead_letter_limit = min(
            request_limit, (message_limits or {}).get(settings.topics.dead_letter, request_limit)
        )
        self.batches = Batches(
            self._aiokafka_producer,
            partitioner,
            request_limit,
            self.limits,
            int(self.app.conf.producer_max_batch_size),
        )
        self.app.shutdown_grace = streams.shutdown_grace.total_seconds()
        self.definitions = DefinitionsReader(settings, definition_partitions, self.stop_on)
        self.app.task(self._read_definitions)
        self.index = DefinitionIndex(self.definitions.table)
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
            # no Faust acks: commits follow what the agents processed (streams.transport)
            channel = self.app.topic(topic, schema=RecordBytes(), acks=False)
            self.app.agent(channel, name=f"streams.{topic}")(self._agent_for(topic))
        self.app.timer(RELEASE_INTERVAL, name="streams.release-waiting")(self._release_waiting)
        self.app.timer(PARTITIONS_REFRESH, name="streams.output-partitions")(
            self._refresh_partitions
        )

    async def _refresh_partitions(self) -> None:
        # a topic that grew places keys anew, as aiokafka's own partitioner would; a
        # broker that does not answer now leaves the counts as they were until next time
        try:
            await self.batches.refresh_partitions()
        except KafkaError as exc:
            log.debug("output partitions not read again: %r", exc)

    async def _read_definitions(self) -> None:
        self.definitions.start(asyncio.get_running_loop())

    def _aiokafka_producer(self) -> AIOKafkaProducer:
        # Private touch point (faust-streaming 0.15.3): Faust's producer has no public
        # accessor for the aiokafka producer it runs, and its `send()` takes one record
        # at a time; streams.batches writes the outputs with aiokafka's public batch API
        # on this same producer (its connection settings, and the flush Faust does
        # before each commit). Guard: tests/streams/test_batches.py.
        faust_producer = self.app.producer
        assert isinstance(faust_producer, FaustProducer), "the app runs on Faust's aiokafka"
        return faust_producer._ensure_producer()

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

    async def _write_and_commit(
        self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any
    ) -> None:
        # The consumer has stopped handing over records: wait for Kafka to acknowledge
        # the outputs already sent, ack their inputs, and commit those before exiting.
        self.definitions.stop()
        self.batches.close()  # what they hold leaves now, without waiting out the linger
        await self.app.producer.flush()
        self.deliveries.settle()
        await self._consumer().commit()

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
        record = record_of(event, topic)
        decoded = self.pipeline.decode(record)
        if isinstance(decoded, Output):
            await self._emit(source, record, [decoded], started)
            return
        try:
            # Inline processors run here, as the record is read: in offset order, with the
            # record as Faust's current event (a table write goes to its partition), also
            # for an alarm that then waits for its definition.
            inlined = self.pipeline.inline(decoded, record, topic)
            event = inlined.event
            ref = self.pipeline.alarm_to_enrich(event, topic)
        except InvalidRecord as exc:  # data read by a condition or processor: not JSON
            await self._emit(source, record, [self.pipeline.poison(record, exc)], started)
            return
        if ref is not None and event is not None:
            definition = self._definition(ref)
            if definition is None:
                wait = self.pipeline.enrichment.wait_for_definition.total_seconds()
                waiting = Waiting(source, record, event, ref, started + wait, started, inlined)
                self.waiting.append(waiting)
                metrics.PENDING.set(len(self.waiting))
                return
            event = self._enriched(event, definition)
        try:
            outputs = self.pipeline.outputs(event, record, topic, inlined=inlined)
        except InvalidRecord as exc:
            outputs = [self.pipeline.poison(record, exc)]
        await self._emit(source, record, outputs, started)

    def _report_health(self) -> None:
        # ready once the definitions are loaded: before that, every alarm event would wait
        if not self.definitions.loaded.is_set():
            self.health.down("loading alarm definitions")
        elif self.app.in_recovery:
            self.health.down("recovering tables")
        elif self.app.rebalancing:
            self.health.down("rebalancing")
        elif self.app.crash_reason is None:
            self.health.ok()

    def _definition(self, ref: AlarmRef) -> dict[str, Any] | None:
        # none until every definition is read: a partly read topic may still hold an
        # alarm's older definition, not yet compacted away
        return self.index.lookup(ref) if self.definitions.loaded.is_set() else None

    def _enriched(self, event: CloudEvent | Reading, definition: dict[str, Any]) -> CloudEvent:
        metrics.ENRICHED.inc()
        return enriched(sdk_event(event), definition, self.pipeline.enrichment.type_suffix)

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
            definition = self._definition(item.ref)
            if definition is not None:
                event = self._enriched(item.event, definition)
            elif now >= item.deadline and self.definitions.loaded.is_set():
                metrics.ENRICHMENT_MISSING.inc()
                log.info("no definition for %s/%s: emitted unenriched", *_ref_text(item.ref))
                event = unenriched(sdk_event(item.event))
            else:
                self.waiting.append(item)
                continue
            # the record as Faust's current event, as in its agent: processors' tables
            with faust_current_event(item.source.source):
                topic = self.pipeline.events_topic
                outputs = self.pipeline.outputs(event, item.record, topic, inlined=item.inlined)
            await self._emit(item.source, item.record, outputs, item.started)
        metrics.PENDING.set(len(self.waiting))

    async def _emit(
        self, source: Pending, record: KafkaRecord, outputs: list[Output], started: float
    ) -> None:
        # Record batches on Faust's producer (streams.batches), not a faust Topic: the
        # records are bytes already, and Topic.send wraps each one in a FutureMessage
        # with sensor calls and a callback task. Faust flushes this producer before each
        # offset commit.
        # Most records join a batch still open (`append`, no coroutine); `send` hands
        # aiokafka a new one.
        append, send = self.batches.append, self.batches.send
        futures: list[Any] = []
        refused: tuple[str, BaseException] | None = None
        limits = self.limits
        for output in outputs:
            topic, out = output.topic, output.record
            limit = limits.get(topic)
            if limit is not None and oversize.size_of(out) + oversize.FRAMING_BYTES > limit:
                refused = refused or (topic, oversize.over_limit(out, topic, limit))
                continue
            try:
                delivered = append(topic, out)
                futures.append(delivered if delivered is not None else await send(topic, out))
            except Exception as exc:
                error = oversize.too_large(exc)
                if error is None:
                    raise
                refused = refused or (topic, error)  # one dead letter per record
        if refused is not None:
            futures.append(await self._dead_letter_too_large(record, *refused))
        self.deliveries.add(source, futures, started)
        self.deliveries.settle()

    async def _dead_letter_too_large(
        self, record: KafkaRecord, dest: str, error: BaseException
    ) -> Any:
        # streams.oversize: not a reason to stop; what fitted of the event's outputs is
        # written, and its dead letter, cut to fit, lets the commit move past it
        log.error(
            "record at %s/%s@%s: its output to %s is too large for Kafka, dead-lettered: %s",
            record.topic,
            record.partition,
            record.offset,
            dest,
            error,
        )
        metrics.DEAD_LETTERED.labels(oversize.STAGE.split(":")[1], "oversize").inc()
        dead = oversize.fitting(record, dest, error, self.dead_letter_limit)
        topic = self.pipeline.dead_letter_topic
        return await self.app.producer.send(topic, dead.key, dead.value, None, None, dead.headers)

    def _finished(self, source: Pending, elapsed: float) -> None:
        self.acks.finish(source)
        metrics.LATENCY.observe(elapsed)

    def delivery_failed(self, error: BaseException) -> None:
        # the source offset stays unacked; crashing before the next commit means a
        # restart reads it again instead of skipping it
        log.error("could not write to Kafka, stopping the worker: %r", error)
        self.health.down(f"kafka write failed: {type(error).__name__}")
        self.stop_on(error)

    def stop_on(self, error: BaseException) -> None:
        """Crash the worker (exit 1): what it has not committed is read again."""
        self._crashing = asyncio.ensure_future(self.app.crash(error))


class RecordBytes(faust.Schema[Any, Any]):
    """Key and value handed to the agent as Kafka holds them.

    The `raw` serializer gives the same bytes, through Faust's serializer registry and
    codec lookup twice per record; `Schema.loads_key`/`loads_value` are the public hooks
    a schema overrides to read a message its own way.
    """

    def loads_key(self, app: Any, message: Any, **_: Any) -> Any:
        return message.key

    def loads_value(self, app: Any, message: Any, **_: Any) -> Any:
        return message.value


class _Boot(BootStrategy):
    # vcstream serves /metrics and /healthz itself (vcstream.observability); Faust's own
    # web server stays off however the worker is started (`faust ... worker` turns it on)
    enable_web = False


class _Worker(faust.Worker):
    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        # Faust's terminal spinner would set the log handler to the command line's level
        # (`faust ... worker` defaults to WARN); the level is vcstream's logging setting
        return None


class _App(transport.App):
    """Faust's app, with a bound on how long stopping may take."""

    BootStrategy = _Boot
    shutdown_grace: float = 10.0

    async def on_stop(self) -> None:
        # Stopping waits on Kafka (flush, commit) and on Faust's services; an unreachable
        # broker would keep a stopping worker alive until the orchestrator's SIGKILL.
        # Past the grace the process ends itself: what it had not committed is read
        # again by the partition's next owner, as after a crash.
        watchdog = threading.Timer(self.shutdown_grace, _stopped_too_late, [self.shutdown_grace])
        watchdog.daemon = True
        watchdog.start()
        await super().on_stop()


def _stopped_too_late(grace: float) -> None:
    log.error("the worker did not stop within streams.shutdownGrace (%.0f s): exiting", grace)
    logging.shutdown()
    os._exit(1)


def _ref_text(ref: AlarmRef) -> tuple[str, str]:
    return ref.source, ref.alarm


def build(settings: Settings, health: Flag | None = None) -> StreamsApp:
    """The app for these settings, with topics created and user processors discovered."""
    from streams.discovery import processors_for
    from streams.topics import message_limits, partition_count, prepare_topics

    processors = processors_for(settings.streams, settings.topics.events)
    pipeline = Pipeline(settings, processors)
    prepare_topics(settings, pipeline.output_topics + pipeline.input_topics)
    partitions = partition_count(settings, settings.topics.alarm_definitions)
    # a processor's table has a changelog partition per partition of its input topic
    stateful = tables_by_input(processors, settings.topics.events)
    inputs = {topic: partition_count(settings, topic) for topic in stateful}
    limits = message_limits(settings, pipeline.output_topics)
    return StreamsApp(settings, processors, partitions, health, inputs, limits)


def __getattr__(name: str) -> Any:
    # `faust -A streams.app worker`: the app is built on first access, from the file
    # named by VCSTREAM_CONFIG (and VCSTREAM_* overrides), like the vcstream command does:
    # the same secrets redacted from logs, /metrics and /healthz served
    if name != "app":
        raise AttributeError(name)
    from vcstream.logging import configure_logging, register_secrets, secrets_of
    from vcstream.observability import Health, ObservabilityServer
    from vcstream.settings import load_settings

    settings = load_settings(os.environ.get("VCSTREAM_CONFIG"))
    register_secrets(secrets_of(settings))
    configure_logging(settings.logging)  # Faust's command sets up its logging later
    flag = Flag("starting")
    if settings.metrics.enabled:
        health = Health()
        health.add("streams", flag)
        ObservabilityServer(settings.metrics, health).start()
    built = build(settings, flag).app
    globals()["app"] = built
    return built
