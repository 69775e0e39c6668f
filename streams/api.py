"""The processor API: a plain function from one event to zero, one or several events.

    from streams.api import processor

    @processor(output="vcenter.vm-power", types=["com.vmware.vsphere.VmPowered*Event.v0"])
    def vm_power(event):
        return event            # or None (drop), or a list of events

A module in `streams/processors/` (or a package named in `streams.processors.packages`)
that defines such a function at module level is found when the worker starts. The
function sees events after alarm enrichment; it never touches Kafka, so it can be tested
with `streams.testing.run`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from schemas.codec import with_changes
from schemas.vsphere import derived_id
from streams.match import Selector
from vcstream.settings.streams import FieldCondition

ProcessorResult = CloudEvent | Iterable[CloudEvent] | None
ProcessorFunction = Callable[[CloudEvent], ProcessorResult]


def data_of(event: CloudEvent) -> dict[str, Any]:
    """The event's data as a mapping ({} when it has none or is not JSON object)."""
    data = event.get_data()
    return data if isinstance(data, dict) else {}


class ProcessorOutputError(TypeError):
    """A processor returned something that is not a CloudEvent."""


@dataclass(frozen=True)
class Processor:
    name: str
    function: ProcessorFunction
    output: str
    selector: Selector
    topic: str | None = None  # None: the raw events topic, after enrichment

    def __call__(self, event: CloudEvent) -> list[CloudEvent]:
        """The function's events, each with an id derived from the input's and its position.

        Reprocessing the same input (after a crash) yields the same ids, so a consumer can
        tell a duplicate from a new fact, whatever id the function itself set.
        """
        result = self.function(event)
        if result is None:
            produced: list[object] = []
        elif isinstance(result, CloudEvent):
            produced = [result]
        elif isinstance(result, str | bytes | dict):
            raise ProcessorOutputError(
                f"processor {self.name} returned {type(result).__name__}, not a CloudEvent"
            )
        else:
            produced = list(result)
        outputs = []
        for index, item in enumerate(produced):
            if not isinstance(item, CloudEvent):
                raise ProcessorOutputError(
                    f"processor {self.name} returned {type(item).__name__}, not a CloudEvent"
                )
            outputs.append(with_changes(item, id=derived_id(event.get_id(), self.name, index)))
        return outputs


def processor(
    *,
    output: str,
    types: Sequence[str] = ("*",),
    subjects: Sequence[str] = ("*",),
    where: Sequence[FieldCondition | dict[str, object]] = (),
    topic: str | None = None,
    name: str | None = None,
) -> Callable[[ProcessorFunction], Processor]:
    """Declare a processor: which events it takes, and the topic its results go to.

    `types`/`subjects` are globs on the CloudEvent attributes, `where` conditions on data
    fields as in a route (`{"field": "To", "in": ["red"]}`), `topic` an input topic other
    than the raw events topic, `name` the label in metrics (default: the function's name).
    """
    if not output:
        raise ValueError("a processor needs an output topic")
    conditions = tuple(
        item if isinstance(item, FieldCondition) else FieldCondition.model_validate(item)
        for item in where
    )

    def register(function: ProcessorFunction) -> Processor:
        return Processor(
            name=name or function.__name__,
            function=function,
            output=output,
            selector=Selector(tuple(types), tuple(subjects), conditions),
            topic=topic,
        )

    return register
