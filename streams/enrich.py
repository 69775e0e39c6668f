"""enrich_alarms: an Alarm*Event joined with its alarm definition (vsphere-alarm-server style).

The definition goes under data.AlarmInfo in the shape of vSphere's AlarmInfo, and the
type gains a suffix (`.AlarmInfo`), so a Trigger written for VEBA's alarm server picks
enriched events apart from raw ones and a function reading AlarmInfo works unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from schemas.alarm_definition import alarm_info
from schemas.codec import with_changes
from schemas.vsphere import derived_id
from streams.api import data_of
from streams.match import GlobSet
from streams.reading import Reading

STEP = "enrich_alarms"
MISSING_EXTENSION = "enrichment"
MISSING_VALUE = "missing"


@dataclass(frozen=True, slots=True)
class AlarmRef:
    """What to look a definition up by: the vCenter (as its CloudEvents source) and alarm."""

    source: str
    alarm: str


def alarm_ref(event: CloudEvent | Reading, types: GlobSet | tuple[str, ...]) -> AlarmRef | None:
    """The alarm an event is about, if it is an alarm event to enrich; None otherwise."""
    if isinstance(types, tuple):
        types = GlobSet(types)
    if not types.matches(event.get_type()):
        return None
    data = event.get_data()
    if not isinstance(data, dict):
        return None
    entity = data.get("Alarm")
    moref = entity.get("Alarm") if isinstance(entity, dict) else None
    value = moref.get("Value") if isinstance(moref, dict) else None
    if not isinstance(value, str) or not value:
        return None
    return AlarmRef(event.get_source(), value)


def enriched(event: CloudEvent, definition: dict[str, Any], type_suffix: str) -> CloudEvent:
    """The event with data.AlarmInfo from the definition record, type suffixed."""
    data = dict(data_of(event))
    # parsed per event, not shared: a processor may change the data it is given
    data["AlarmInfo"] = alarm_info(definition)
    return with_changes(
        event,
        data=data,
        id=derived_id(event.get_id(), STEP),
        type=event.get_type() + type_suffix,
    )


def unenriched(event: CloudEvent) -> CloudEvent:
    """The event as it came, marked so a consumer knows its definition was not found.

    Same id as an enriched output would have: a replay that finds the definition yields a
    detectable duplicate of this event, not a second fact.
    """
    marker: dict[str, Any] = {MISSING_EXTENSION: MISSING_VALUE}
    return with_changes(event, None, id=derived_id(event.get_id(), STEP), **marker)
