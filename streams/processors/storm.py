"""Built-in, off by default (`streams.alarmStorm`): an alarm storm on one entity becomes
one `AlarmStorm` event instead of a message per alarm.

Alarms are counted per entity (the record key) in a tumbling window. The first
`threshold` of a window go on as they are; the next one is suppressed and an AlarmStorm
event is added in its place, which the default routes send to the alarms topic (the Slack
sink renders it); the window's further alarms on that entity are suppressed, silently.
A window's first alarms cannot wait to see whether a storm follows: under a steady storm,
each window lets `threshold` alarms and one summary through.

The state per entity and window is the ids of the alarms counted (at most threshold + 1)
and a tally for the summary. The ids make a record read again (after a crash, before its
offset was committed) get the decision it got the first time, summary included, with
the same derived id; a count alone would count it twice.

AlarmStorm data: `entity` (`name`, `type`, `value`), `vcenter` (the event source),
`threshold`, `count` (alarms counted when it was made: threshold + 1), `windowStart` and
`windowEnd` (RFC 3339), `alarms` (`name` and `count`, most first), `statuses` (count by
`To`), `worst` (the worst status), `firstTime`/`lastTime` (of the alarms) and `message`.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from schemas.codec import with_changes
from schemas.vsphere import ALARM_STORM_TYPE
from streams.api import Inline, data_of, inline, suppress, suppressed
from streams.state import Table, current_record
from vcstream.settings.streams import AlarmStormSettings

NAME = "alarm_storm"
REASON = "storm"
SEVERITY = ("red", "yellow", "gray", "green")  # worst first


def alarm_storm(settings: AlarmStormSettings) -> Inline:
    """The processor for these settings (its window is part of its table)."""
    size = settings.window.total_seconds()
    threshold = settings.threshold
    storms = Table(
        "alarm-storms",
        default=dict,
        help="Alarms counted per entity (record key) and window: ids and a tally.",
    ).tumbling(size)

    @inline(name=NAME, types=settings.types, where=settings.where, tables=[storms])
    def alarm_storm(event: CloudEvent) -> CloudEvent | list[CloudEvent]:
        if suppressed(event) is not None:
            return event  # silenced before (maintenance): nobody would see it storm
        record = current_record()
        entity = (record.key or b"").decode(errors="replace")
        state: dict[str, Any] = storms[entity].current()
        ids: list[str] = state.get("ids", [])
        if event.get_id() in ids:  # read again: decided before, decide the same
            position = ids.index(event.get_id())
        elif len(ids) <= threshold:
            position = len(ids)
            state = counted(state, event)
            storms[entity] = state  # a new value: written to the changelog
        else:
            return suppress(event, REASON)
        if position < threshold:
            return event
        start = (record.timestamp_ms or 0) / 1000 // size * size
        return [suppress(event, REASON), summary(event, state, threshold, start, start + size)]

    return alarm_storm


def counted(state: dict[str, Any], event: CloudEvent) -> dict[str, Any]:
    """The state with this alarm counted (a new dict: the table's value is not changed)."""
    data = data_of(event)
    alarm = data.get("Alarm")
    name = str((alarm.get("Name") if isinstance(alarm, dict) else None) or event.get_type())
    status = str(data.get("To") or "gray").lower()
    when = _iso(event.get_time())
    alarms = dict(state.get("alarms", {}))
    alarms[name] = alarms.get(name, 0) + 1
    statuses = dict(state.get("statuses", {}))
    statuses[status] = statuses.get(status, 0) + 1
    return {
        "ids": [*state.get("ids", []), event.get_id()],
        "alarms": alarms,
        "statuses": statuses,
        "firstTime": state.get("firstTime") or when,
        "lastTime": when,
    }


def summary(
    event: CloudEvent, state: dict[str, Any], threshold: int, start: float, end: float
) -> CloudEvent:
    """The AlarmStorm event, made from the alarm that started the storm."""
    data = data_of(event)
    entity = _entity(data)
    statuses: dict[str, int] = state.get("statuses", {})
    worst = next((status for status in SEVERITY if statuses.get(status)), "gray")
    alarms = Counter(state.get("alarms", {})).most_common()
    until = _iso(datetime.fromtimestamp(end, UTC))
    name = entity["name"] or entity["value"] or "an entity"
    return with_changes(
        event,
        data={
            "entity": entity,
            "vcenter": event.get_source(),
            "threshold": threshold,
            "count": len(state.get("ids", [])),
            "windowStart": _iso(datetime.fromtimestamp(start, UTC)),
            "windowEnd": until,
            "alarms": [{"name": alarm, "count": count} for alarm, count in alarms],
            "statuses": statuses,
            "worst": worst,
            "firstTime": state.get("firstTime"),
            "lastTime": state.get("lastTime"),
            "message": f"More than {threshold} alarms on {name} within "
            f"{_duration(end - start)}: its further alarms are held back until {until}.",
        },
        type=ALARM_STORM_TYPE,
        subject="AlarmStorm",
    )


def _entity(data: dict[str, Any]) -> dict[str, str | None]:
    """`Entity` of an alarm event (`{"Name", "Entity": {"Type", "Value"}}`), flattened."""
    for field in ("Entity", "Vm", "Host"):
        argument = data.get(field)
        if not isinstance(argument, dict):
            continue
        for key, value in argument.items():
            if key != "Name" and isinstance(value, dict) and value.get("Value"):
                return {
                    "name": argument.get("Name"),
                    "type": value.get("Type"),
                    "value": value.get("Value"),
                }
    return {"name": None, "type": None, "value": None}


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _duration(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"
