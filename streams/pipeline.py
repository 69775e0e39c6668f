"""What happens to one record, without Kafka: decode, inline processors, route, run
processors, dead-letter.

A record is read as a `Reading` (attributes from its headers, data parsed only when a
condition, the enrichment or a processor reads it); the SDK's event is built only for a
processor whose selector took the event or for an enrichment, and a record nothing
changed is written to its routes as the exact bytes and headers it came with. A record
whose data turns out not to be JSON when it is read is poison (`InvalidRecord`, raised
to the caller, which dead-letters it with `poison`); one whose data nothing reads goes
on unread, as every other stage passes it (the sinks check what they deliver).

The Faust app (`streams.app`) feeds records in and writes the outputs; everything that
decides what is written where lives here, so it is testable on its own.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

from cloudevents.core.v1.event import CloudEvent

import schemas
from schemas.cloudevent import LayoutCheck
from schemas.deadletter import Reason, dead_letter
from schemas.record import KafkaRecord
from streams import metrics
from streams.api import AnyProcessor, Inline, Processor, suppressed
from streams.enrich import AlarmRef, alarm_ref
from streams.match import GlobSet, Selector
from streams.reading import Reading, sdk_event
from streams.state import processing
from vcstream.settings import Settings

log = logging.getLogger(__name__)

ROUTE_STEP = "route_by_type"


# NamedTuples, not dataclasses: one or more of each per event, and a tuple is built
# for less than half a frozen dataclass (which sets each field through object.__setattr__)
class Output(NamedTuple):
    topic: str
    record: KafkaRecord


class Inlined(NamedTuple):
    """What the inline processors made of a record's event."""

    event: CloudEvent | Reading | None  # the event as it goes on; None: dropped
    added: Sequence[CloudEvent] = ()  # made besides (a storm summary)
    dead: Sequence[Output] = ()  # an inline processor failed on it


@dataclass(frozen=True)
class Route:
    name: str
    topic: str
    selector: Selector
    include_suppressed: bool = False

    @cached_property
    def label(self) -> str:
        return f"{ROUTE_STEP}:{self.name}"


class Pipeline:
    def __init__(self, settings: Settings, processors: Sequence[AnyProcessor]) -> None:
        topics = settings.topics
        self.events_topic = topics.events
        self.dead_letter_topic = topics.dead_letter
        self.enrichment = settings.streams.enrichment
        # the records of one encoder differ in their headers by id and time only: a header
        # set seen before needs only those checked (the verdicts of CloudEventView.check)
        self._check = LayoutCheck().check
        self._enrich_types = GlobSet(self.enrichment.types)
        self.routes = [
            Route(spec.name, spec.topic, Selector.of(spec), spec.include_suppressed)
            for spec in settings.streams.effective_routes(topics.alarms, topics.audit)
        ]
        self.inline_processors = [item for item in processors if isinstance(item, Inline)]
        self.processors: dict[str, list[Processor]] = {}
        for item in processors:
            if isinstance(item, Processor):
                self.processors.setdefault(item.topic or topics.events, []).append(item)
        self.processors.setdefault(topics.events, [])

    @property
    def input_topics(self) -> list[str]:
        return list(self.processors)

    @property
    def output_topics(self) -> list[str]:
        named = [route.topic for route in self.routes]
        named += [item.output for group in self.processors.values() for item in group]
        return sorted({*named, self.dead_letter_topic})

    def decode(self, record: KafkaRecord) -> Reading | Output:
        """The record's event, or its dead letter when it is not one (poison)."""
        reading = Reading(record)
        try:
            self._check(reading.view, data=False)
        except schemas.InvalidRecord as exc:
            return self.poison(record, exc)
        return reading

    def poison(self, record: KafkaRecord, error: schemas.InvalidRecord) -> Output:
        log.warning(
            "poison record at %s/%s@%s: %s", record.topic, record.partition, record.offset, error
        )
        return self.dead_letter(record, "decode", "poison", error)

    def inline(self, event: CloudEvent | Reading, record: KafkaRecord, topic: str) -> Inlined:
        """The inline processors on a record's event, as it is read (before enrichment).

        A processor that raises is passed by: the event goes on as it came to it (a bug in
        a filter must not lose alarms) and the record is dead-lettered naming it.
        """
        if topic != self.events_topic or not self.inline_processors:
            return Inlined(event)
        current: CloudEvent | Reading | None = event
        added: list[CloudEvent] = []
        dead: list[Output] = []
        with processing(record):
            for item in self.inline_processors:
                if current is None:
                    break
                if not item.selector.matches(current):
                    continue
                event_type = current.get_type()
                metrics.EVENTS_IN.inc(item.name, event_type)
                given = sdk_event(current)  # not JSON: InvalidRecord, to the caller
                try:
                    kept, extra = item(given)
                    # encoded here, not when routed: an event the wire format cannot carry
                    # is this processor's failure, not one that stops the stream later
                    for out in [kept, *extra] if kept is not given else extra:
                        if out is not None:
                            schemas.encode(out, record.key)
                except Exception as exc:  # a user's bug must not stop the stream
                    log.warning("processor %s failed on %s: %r", item.name, given.get_id(), exc)
                    dead.append(self.dead_letter(record, item.name, "processing", exc))
                    continue
                if kept is None:
                    metrics.DROPPED.labels(item.name).inc()
                else:
                    reason = suppressed(kept)
                    if reason is not None and suppressed(current) is None:
                        metrics.SUPPRESSED.labels(item.name, reason).inc()
                    metrics.EVENTS_OUT.inc(item.name, kept.get_type())
                for out in extra:
                    metrics.EVENTS_OUT.inc(item.name, out.get_type())
                # the event returned as it was given: still the record's own bytes
                current = current if kept is given else kept
                added += extra
        return Inlined(current, added, dead)

    def alarm_to_enrich(self, event: CloudEvent | Reading | None, topic: str) -> AlarmRef | None:
        if event is None or not self.enrichment.enabled or topic != self.events_topic:
            return None
        return alarm_ref(event, self._enrich_types)

    def outputs(
        self,
        event: CloudEvent | Reading | None,
        record: KafkaRecord,
        topic: str,
        unchanged: bool = False,
        inlined: Inlined | None = None,
    ) -> list[Output]:
        """Everything a record makes: routed copies of its event (already enriched; None
        when an inline processor dropped it) and of the events inline processors added,
        processor results, dead letters.

        A `Reading` (or `unchanged`: the event is the record's own, as decoded) is routed
        as the record's bytes as read (no encode), which is what most events are.
        """
        with processing(record):  # for the processors' tables (streams.state)
            outputs = self._outputs(event, record, topic, unchanged) if event is not None else []
            if inlined is not None:
                for added in inlined.added:
                    outputs += self._outputs(added, record, topic)
                outputs += inlined.dead
        return outputs

    def _outputs(
        self,
        event: CloudEvent | Reading,
        record: KafkaRecord,
        topic: str,
        unchanged: bool = False,
    ) -> list[Output]:
        outputs: list[Output] = []
        unchanged = unchanged or isinstance(event, Reading)
        event_type = event.get_type()
        if topic == self.events_topic and self.routes:
            routed: KafkaRecord | None = None
            held = suppressed(event) is not None
            for route in self.routes:
                if held and not route.include_suppressed:
                    continue
                if route.selector.matches(event):
                    if routed is None:  # one record for every route: the same event
                        routed = _as_read(record) if unchanged else None
                        routed = routed or schemas.encode(sdk_event(event), record.key)
                    metrics.EVENTS_IN.inc(route.label, event_type)
                    outputs.append(Output(route.topic, routed))
                    metrics.EVENTS_OUT.inc(route.label, event_type)
        for item in self.processors.get(topic, ()):
            if not item.selector.matches(event):
                continue
            metrics.EVENTS_IN.inc(item.name, event_type)
            given = sdk_event(event)  # not JSON: InvalidRecord, to the caller
            try:
                produced = item.records(given, record.key)
            except Exception as exc:  # a user's bug must not stop the stream
                log.warning("processor %s failed on %s: %r", item.name, given.get_id(), exc)
                outputs.append(self.dead_letter(record, item.name, "processing", exc))
                continue
            for out_type, out in produced:
                metrics.EVENTS_OUT.inc(item.name, out_type)
                outputs.append(Output(item.output, out))
        return outputs

    def dead_letter(
        self, record: KafkaRecord, step: str, reason: Reason, error: BaseException
    ) -> Output:
        metrics.DEAD_LETTERED.labels(step, reason).inc()
        return Output(
            self.dead_letter_topic,
            dead_letter(record, stage=f"streams:{step}", reason=reason, error=error),
        )


def _as_read(record: KafkaRecord) -> KafkaRecord | None:
    """The record to write again as is, if its headers are as `schemas.encode` writes them.

    Decoding forgives some forms (upper-case header names, a repeated header: the last
    wins) that re-encoding would normalise; such a record is encoded afresh instead.
    """
    names = tuple(name for name, _ in record.headers)
    plain = _PLAIN_NAMES.get(names)
    if plain is None:  # the same few header lists on every record: answered once each
        plain = len(set(names)) == len(names) and all(name.islower() for name in names)
        if len(_PLAIN_NAMES) < _MAX_NAME_LISTS:
            _PLAIN_NAMES[names] = plain
    if not plain or record.value is None:
        return None
    return record


_PLAIN_NAMES: dict[tuple[str, ...], bool] = {}
_MAX_NAME_LISTS = 1024
