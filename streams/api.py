"""The processor API: a plain function from one event to zero, one or several events.

    from streams.api import processor

    @processor(output="vcenter.vm-power", types=["com.vmware.vsphere.VmPowered*Event.v0"])
    def vm_power(event):
        return event            # or None (drop), or a list of events

A module in `streams/processors/` (or a package named in `streams.processors.packages`)
that defines such a function at module level is found when the worker starts. The
function sees events after alarm enrichment; it never touches Kafka, so it can be tested
with `streams.testing.run`.

An `@inline` processor runs on the event itself, before it is enriched and routed: what
it returns goes on in the event's place. It can drop the event (None), change it, mark
it `suppress(event, reason)` (kept from the alerting routes, still audited) and add
events (a summary). Both kinds can keep state in Faust tables (`streams.state`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from schemas.codec import PARTITION_KEY, encode, with_changes
from schemas.record import KafkaRecord
from schemas.vsphere import SUPPRESSED_EXTENSION, derived_id
from streams.match import Readable, Selector
from streams.state import Table
from vcstream.settings.streams import FieldCondition

ProcessorResult = CloudEvent | Iterable[CloudEvent] | None
ProcessorFunction = Callable[[CloudEvent], ProcessorResult]


def data_of(event: CloudEvent) -> dict[str, Any]:
    """The event's data as a mapping ({} when it has none or is not JSON object)."""
    data = event.get_data()
    return data if isinstance(data, dict) else {}


def suppress(event: CloudEvent, reason: str) -> CloudEvent:
    """The event marked as kept from the alerting routes (`includeSuppressed` routes, such
    as the audit route, still take it), with the reason in its `suppressed` extension."""
    marker: dict[str, Any] = {SUPPRESSED_EXTENSION: reason}
    return with_changes(event, None, **marker)


def suppressed(event: Readable) -> str | None:
    """Why the event was suppressed, or None."""
    reason = event.get_extension(SUPPRESSED_EXTENSION)
    return str(reason) if reason is not None else None


class ProcessorOutputError(TypeError):
    """A processor returned something that is not a CloudEvent."""


def _events_of(name: str, result: ProcessorResult) -> list[CloudEvent]:
    if result is None:
        return []
    if isinstance(result, CloudEvent):
        return [result]
    if isinstance(result, str | bytes | dict):
        raise ProcessorOutputError(
            f"processor {name} returned {type(result).__name__}, not a CloudEvent"
        )
    produced = list(result)
    for item in produced:
        if not isinstance(item, CloudEvent):
            raise ProcessorOutputError(
                f"processor {name} returned {type(item).__name__}, not a CloudEvent"
            )
    return produced


@dataclass(frozen=True)
class Processor:
    name: str
    function: ProcessorFunction
    output: str
    selector: Selector
    topic: str | None = None  # None: the raw events topic, after enrichment
    tables: tuple[Table, ...] = ()

    def __call__(self, event: CloudEvent) -> list[CloudEvent]:
        """The function's events, each with an id derived from the input's and its position.

        Reprocessing the same input (after a crash) yields the same ids, so a consumer can
        tell a duplicate from a new fact, whatever id the function itself set.
        """
        return [
            with_changes(item, id=derived_id(event.get_id(), self.name, index))
            for index, item in enumerate(_events_of(self.name, self.function(event)))
        ]

    def records(self, event: CloudEvent, key: bytes | None) -> list[tuple[str, KafkaRecord]]:
        """(type, record) of each of the function's events: `schemas.encode` of what
        `self(event)` returns, keyed `key`.

        The derived id is written into the encoded record's `ce_id` header rather than
        into a copy of the event: a copy is built and validated again by the SDK, which
        was a sixth of the example processor's cost. (`with_changes` also drops a
        `partitionkey` attribute; an event that has one is copied as before.)
        """
        input_id = event.get_id()
        produced: list[tuple[str, KafkaRecord]] = []
        for index, item in enumerate(_events_of(self.name, self.function(event))):
            new_id = derived_id(input_id, self.name, index)
            if PARTITION_KEY in item.get_attributes():
                produced.append((item.get_type(), encode(with_changes(item, id=new_id), key)))
                continue
            record = encode(item, key)
            headers = record.headers  # this record's own list: changed in place
            # `encode` writes the attributes in the event's order, the id first for an
            # event the SDK built; any other order is looked for
            at = 0 if headers[0][0] == "ce_id" else _position(headers, "ce_id")
            headers[at] = ("ce_id", new_id.encode())
            produced.append((item.get_type(), record))
        return produced


def _position(headers: Sequence[tuple[str, bytes]], name: str) -> int:
    return next(at for at, (header, _) in enumerate(headers) if header == name)


@dataclass(frozen=True)
class Inline:
    """A processor of the event itself, run as it is read, before enrichment and routes.

    Inline processors run in order (the built-in ones first), each on what the one
    before passed on; events one adds go straight on to enrichment and the routes.
    """

    name: str
    function: ProcessorFunction
    selector: Selector
    tables: tuple[Table, ...] = ()

    def __call__(self, event: CloudEvent) -> tuple[CloudEvent | None, list[CloudEvent]]:
        """(the event as it goes on, or None: dropped; the events added).

        A returned event with the input's id and type is the event (its data changed or
        marked, maybe); any other is a new fact, added with an id derived from the
        input's and its position, as a processor's output (`with_changes(event,
        type=...)` makes one).
        """
        kept: CloudEvent | None = None
        added: list[CloudEvent] = []
        same = (event.get_id(), event.get_type())
        for index, item in enumerate(_events_of(self.name, self.function(event))):
            if (item.get_id(), item.get_type()) != same:
                added.append(with_changes(item, id=derived_id(event.get_id(), self.name, index)))
            elif kept is None:
                kept = item
            else:
                raise ProcessorOutputError(f"processor {self.name} returned its event twice")
        return kept, added


AnyProcessor = Processor | Inline


def _selector(
    types: Sequence[str],
    subjects: Sequence[str],
    where: Sequence[FieldCondition | dict[str, object]],
) -> Selector:
    conditions = tuple(
        item if isinstance(item, FieldCondition) else FieldCondition.model_validate(item)
        for item in where
    )
    return Selector(tuple(types), tuple(subjects), conditions)


def processor(
    *,
    output: str,
    types: Sequence[str] = ("*",),
    subjects: Sequence[str] = ("*",),
    where: Sequence[FieldCondition | dict[str, object]] = (),
    topic: str | None = None,
    name: str | None = None,
    tables: Sequence[Table] = (),
) -> Callable[[ProcessorFunction], Processor]:
    """Declare a processor: which events it takes, and the topic its results go to.

    `types`/`subjects` are globs on the CloudEvent attributes, `where` conditions on data
    fields as in a route (`{"field": "To", "in": ["red"]}`), `topic` an input topic other
    than the raw events topic, `name` the label in metrics (default: the function's name),
    `tables` the `streams.state` tables it uses (made only when it runs).
    """
    if not output:
        raise ValueError("a processor needs an output topic")
    selector = _selector(types, subjects, where)

    def register(function: ProcessorFunction) -> Processor:
        return Processor(
            name=name or function.__name__,
            function=function,
            output=output,
            selector=selector,
            topic=topic,
            tables=tuple(tables),
        )

    return register


def inline(
    *,
    types: Sequence[str] = ("*",),
    subjects: Sequence[str] = ("*",),
    where: Sequence[FieldCondition | dict[str, object]] = (),
    name: str | None = None,
    tables: Sequence[Table] = (),
) -> Callable[[ProcessorFunction], Inline]:
    """Declare an inline processor of the raw events topic (see `Inline`); the arguments
    are `processor`'s. Events it does not take go on unchanged."""
    selector = _selector(types, subjects, where)

    def register(function: ProcessorFunction) -> Inline:
        return Inline(
            name=name or function.__name__,
            function=function,
            selector=selector,
            tables=tuple(tables),
        )

    return register
