"""One vCenter's stream into Kafka, on its own thread, surviving whatever fails.

The loop: read a page of events; keep the new ones (Sequencer) and encode them; write
them, any alarm definitions they change and the checkpoint in one transaction, which
commits on a thread of its own while the next pages are read (CommitPipeline: one
transaction in flight, the pages read meanwhile gathered into the next); when a read
comes back empty, wait for the vCenter to report a change. The position in memory only
advances after a commit, so after any failure the worker starts again from it:

- vCenter gone, session expired, vCenter restarted: log in again (with backoff) and
  recreate the collector from the position;
- Kafka unavailable: the writer retries the same batch until Kafka is back;
- the outcome of a commit unknown (fatal producer error): a new producer, and the
  position re-read from the checkpoint topic, which is the truth.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_when_event_set,
    wait_exponential,
)

from producer import alarms, metrics
from producer.checkpoint import load_checkpoint
from producer.collector import EventCollector, history_begin
from producer.connection import ConfigurationProblem, Session, VCenterUnavailable, classify, connect
from producer.events import checkpoint_record, event_record
from producer.identity import CheckpointKeys
from producer.pacing import Pacer
from producer.pipeline import MAX_BATCH_EVENTS, Batch, CommitPipeline
from producer.position import Gap, GapReason, Position, Sequencer, position_of
from producer.supervision import SourceWorker
from producer.writer import (
    Outgoing,
    Stopped,
    TransactionalWriter,
    TransactionStateUnknown,
)
from schemas.record import KafkaRecord
from schemas.vmodl_json import event_class_name
from vcstream.observability import Flag, Health
from vcstream.settings import Settings
from vcstream.settings.vcenter import VCenterSettings

log = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# a resumed collector starts a little before the checkpoint: clocks are compared at
# microseconds here and at whatever precision the vCenter keeps there
RESUME_SLACK = timedelta(seconds=1)


class CollectorLost(Exception):
    """The collector returns nothing although the vCenter reports newer events."""


class VCenterWorker(SourceWorker[Position]):
    kind = "vCenter"
    source_errors = (VCenterUnavailable, ConfigurationProblem, CollectorLost)

    def __init__(
        self,
        vcenter: VCenterSettings,
        settings: Settings,
        stop: threading.Event,
        health: Health,
        keys: CheckpointKeys,
        session: Session | None = None,
    ) -> None:
        super().__init__(
            f"vcenter-{vcenter.name}",
            vcenter.name,
            settings,
            stop,
            Flag("connecting" if session is None else None),
        )
        self.vcenter = vcenter
        self.session = session
        health.add(f"vcenter:{vcenter.name}", self.source_flag)
        health.add(f"kafka:{vcenter.name}", self.kafka_flag)
        self._keys = keys
        self._checkpoint_key: str | None = None
        self._snapshot_for: Session | None = None  # alarms are snapshotted once per login

    # ---- the outer loop (SourceWorker.run): recover from every failure ----------------

    def _step(self) -> None:
        self._run_session()

    def _source_failed(self, exc: Exception) -> None:
        if isinstance(exc, CollectorLost):  # a new collector, from the position
            self._report([Gap(GapReason.COLLECTOR_LOST, 0, str(exc))])
        else:
            self._drop_session(str(exc))

    def _close_source(self) -> None:
        if self.session is not None:
            self.session.close()

    def _drop_session(self, reason: str) -> None:
        log.warning("vCenter %s: %s; reconnecting", self.vcenter.name, reason)
        self.source_flag.down(reason)
        if self.session is not None:
            self.session.close()
            self.session = None

    def _connect(self) -> Session:
        """Log in, retrying with exponential backoff until it works or shutdown."""
        reconnect = self.settings.producer.reconnect
        retrying = Retrying(
            retry=retry_if_exception_type((VCenterUnavailable, ConfigurationProblem)),
            wait=wait_exponential(
                multiplier=reconnect.initial_delay.total_seconds(),
                max=reconnect.max_delay.total_seconds(),
            ),
            stop=stop_when_event_set(self.stop),
            sleep=self._pause,
            before_sleep=self._connect_failed,
            reraise=True,
        )
        timeout = self.settings.producer.request_timeout.total_seconds()
        try:
            session = retrying(connect, self.vcenter, timeout)
        except (VCenterUnavailable, ConfigurationProblem):
            raise Stopped() from None
        metrics.RECONNECTS.labels(self.vcenter.name).inc()
        log.info("vCenter %s: connected again", self.vcenter.name)
        return session

    def _pause(self, seconds: float) -> None:
        self.stop.wait(seconds)  # a shutdown cuts the backoff short

    def _connect_failed(self, state: RetryCallState) -> None:
        problem = str(state.outcome.exception() if state.outcome else "unreachable")
        self.source_flag.down(problem)
        log.warning(
            "vCenter %s: %s; next attempt in %.1fs",
            self.vcenter.name,
            problem,
            state.upcoming_sleep,
        )

    # ---- one session: resume, then stream --------------------------------------------

    def _run_session(self) -> None:
        if self.session is None:
            self.session = self._connect()
        session = self.session
        self.source_flag.ok()
        identity = session.identity
        key = self._keys.key_for(self.vcenter.name, identity.instance_uuid)
        if self._checkpoint_key not in (None, key):
            # a different vCenter answers at this address: its own writer and position
            log.warning("vCenter %s: new instance UUID %s", identity.name, identity.instance_uuid)
            self._restart_writer()
        self._checkpoint_key = key
        writer = self._writer_for(session)
        if self._position is None:
            self._position = self._resume_position(session, writer)
        if self.settings.producer.alarm_definitions and self._snapshot_for is not session:
            self._publish_alarm_snapshot(session, writer)
            self._snapshot_for = session
        begin = None if self._position.time == EPOCH else self._position.time
        if begin is not None and not self._position.is_boundary:
            begin -= RESUME_SLACK
        collector = self._call(
            session,
            lambda: EventCollector(
                session.content,
                begin,
                self.settings.producer.poll_interval.total_seconds(),
                vcenter=self.vcenter.name,
            ),
        )
        try:
            self._stream(session, writer, collector, Sequencer(self._position))
        finally:
            collector.close()

    def _writer_for(self, session: Session) -> TransactionalWriter:
        if self._writer is None:
            producer = self.settings.producer
            self._writer = TransactionalWriter(
                self.settings.kafka,
                f"{producer.transactional_id_prefix}.{self._checkpoint_key}",
                producer.transaction_timeout,
                self.vcenter.name,
                self.stop,
                self._kafka_state,
            )
            self._writer.start()
        return self._writer

    def _key(self) -> bytes:
        assert self._checkpoint_key is not None
        return self._checkpoint_key.encode()

    def _resume_position(self, session: Session, writer: TransactionalWriter) -> Position:
        """The committed checkpoint; on a first start, a boundary committed right away."""
        identity = session.identity
        checkpoint = load_checkpoint(
            self.settings.kafka, self.settings.topics.checkpoints, identity, self._key()
        )
        if checkpoint is not None:
            log.info(
                "vCenter %s: resuming after event %d (%s)",
                identity.name,
                checkpoint.position.key,
                checkpoint.position.time.isoformat(),
            )
            return checkpoint.position
        window = self.settings.producer.history_window()
        now = self._call(session, session.service_instance.CurrentTime)
        begin = history_begin(now, window)
        position = Position.boundary(begin if begin is not None else EPOCH)
        # committed at once, so a restart before the first event keeps this start
        record = checkpoint_record(identity, position, self._key())
        writer.commit([(self.settings.topics.checkpoints, record)])
        log.info(
            "vCenter %s: no checkpoint; starting at %s (startAt %s)",
            identity.name,
            position.time.isoformat(),
            self.settings.producer.start_at,
        )
        return position

    def _publish_alarm_snapshot(self, session: Session, writer: TransactionalWriter) -> None:
        topic = self.settings.topics.alarm_definitions
        stored = alarms.stored_definitions(self.settings.kafka, topic, session.identity)
        records = self._call(
            session, lambda: alarms.snapshot(session.content, session.identity, stored)
        )
        if records:
            writer.commit([(topic, record) for record in records])
            alarms.count(session.identity, records)
        log.info(
            "vCenter %s: alarm definitions up to date (%d written)", self.vcenter.name, len(records)
        )

    def _stream(
        self,
        session: Session,
        writer: TransactionalWriter,
        collector: EventCollector,
        sequencer: Sequencer,
    ) -> None:
        page_size = self.settings.producer.page_size
        pacer = Pacer(self.settings.producer.commit_interval.total_seconds())
        read_interval = metrics.READ_INTERVAL.labels(self.vcenter.name)
        newest_seen: datetime | None = None  # newest event time the vCenter reported
        pipeline = CommitPipeline(writer, self.vcenter.name)
        gathering = Batch()  # read, not yet committing
        try:
            while not self.stop.is_set():
                pacer.read_began(time.monotonic())
                page = self._call(session, lambda: collector.read_page(page_size))
                repeated = sequencer.repeated
                fresh, gaps = sequencer.accept(page)
                self._report(gaps)
                if sequencer.repeated > repeated:
                    metrics.EVENTS_REPEATED.labels(self.vcenter.name).inc(
                        sequencer.repeated - repeated
                    )
                if fresh:
                    self._gather(session, gathering, fresh)
                if gathering.events and (
                    not page or not pipeline.busy or len(gathering.events) >= MAX_BATCH_EVENTS
                ):
                    # its transaction starts once the one in flight has committed
                    last = sequencer.last
                    checkpoint = checkpoint_record(session.identity, last, self._key())
                    batch = gathering.close(last, (self.settings.topics.checkpoints, checkpoint))
                    gathering = Batch()
                    if len(page) < page_size:
                        # caught up: nothing to read until the next read is due
                        for committed in pipeline.commit(batch):
                            self._committed(session, committed)
                        pacer.committed(time.monotonic())
                        read_interval.set(pacer.interval_s())
                    else:
                        self._committed(session, pipeline.submit(batch))
                if page:
                    # more may have arrived meanwhile: read on, and wait only once a
                    # read comes back empty (a wait costs a round trip at least and,
                    # on vcsim, a 20 ms tick)
                    collector.busy()
                    if len(page) < page_size:
                        # caught up while events trickle in: read again when the pacer
                        # says instead of waking on each event's doorbell, whose change
                        # carries the event too (parsed twice)
                        self._wait_until(pacer.plan(time.monotonic()))
                    continue
                # nothing to read: the batch in flight finishes before the wait
                self._committed(session, pipeline.drain())
                position = sequencer.last
                if newest_seen is not None and newest_seen > position.time:
                    raise CollectorLost(
                        "the event collector returns nothing although events up to "
                        f"{newest_seen.isoformat()} exist"
                    )
                latest = self._call(session, collector.wait_for_change)
                newest_seen = max((position_of(e).time for e in latest or []), default=None)
                if latest:
                    # events trickle in: let the ones right behind this join its transaction
                    self._wait_until(pacer.plan(time.monotonic()))
        finally:
            # never leave a commit running: the writer is used again after this returns;
            # its error, if any, outranks the one being raised (the writer must restart).
            # A batch still gathering is dropped: the position has not moved past it.
            try:
                self._committed(session, pipeline.drain())
            finally:
                pipeline.close()

    def _wait_until(self, due: float) -> None:
        delay = due - time.monotonic()
        if delay > 0:
            self.stop.wait(delay)  # a shutdown cuts it short

    def _gather(self, session: Session, batch: Batch, fresh: list[Any]) -> None:
        """Encode new events into `batch`, with the alarm definitions they change."""
        identity = session.identity
        topics = self.settings.topics
        records: list[Outgoing] = [(topics.events, event_record(e, identity)) for e in fresh]
        definitions: list[KafkaRecord] = []
        if self.settings.producer.alarm_definitions:
            for event in fresh:
                if alarms.changes_definition(event):
                    definitions += self._call(
                        session, lambda e=event: alarms.changes_for(session.content, identity, e)
                    )
        records += [(topics.alarm_definitions, record) for record in definitions]
        batch.add(fresh, records, definitions)

    def _committed(self, session: Session, batch: Batch | None) -> None:
        """What follows a batch's commit: the position advances, metrics count it."""
        if batch is None or batch.last is None:
            return
        log.debug(
            "vCenter %s: %d event(s) up to key %d committed in %.0f ms",
            self.vcenter.name,
            len(batch.events),
            batch.last.key,
            batch.commit_ms,
        )
        self._position = batch.last
        for class_name, count in Counter(map(event_class_name, batch.events)).items():
            metrics.EVENTS.labels(self.vcenter.name, class_name).inc(count)
        alarms.count(session.identity, batch.definitions)
        metrics.PROGRESS.committed(self.vcenter.name, batch.last.time.timestamp())

    def _report(self, gaps: list[Gap]) -> None:
        for gap in gaps:
            log.warning("vCenter %s: %s", self.vcenter.name, gap.detail)
            metrics.HISTORY_GAPS.labels(self.vcenter.name, gap.reason.value).inc()
            if gap.missed:
                metrics.EVENTS_MISSED.labels(self.vcenter.name).inc(gap.missed)

    def _call(self, session: Session, step: Any) -> Any:
        """A vCenter API call; its failures become VCenterUnavailable/ConfigurationProblem."""
        try:
            return step()
        except (Stopped, TransactionStateUnknown):
            raise
        except Exception as exc:
            raise classify(exc, session.vcenter) from None
