"""Slack messages for alarm events: one Block Kit message per alarm, or a storm digest,
and one for an AlarmStorm event (the streams worker's summary of a storm on one entity).

An enriched alarm event (`AlarmStatusChangedEvent` with `AlarmInfo`) gives the status
(`To`: red, yellow, green, gray), the alarm's name and description, the entity, the
vCenter, the time and vCenter's own message. The colour bar needs a legacy attachment
(Block Kit has no colour), so blocks go inside one; `text` is the plain fallback that
notifications and screen readers show.

A Horizon audit event (`com.vmware.horizon.*`) gets a message of its own: the colour from
its severity (AUDIT_FAIL and ERROR red, WARNING yellow), its type, Horizon's message,
the user, machine and pool it names, the server and the time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from cloudevents.core.base import BaseCloudEvent

from schemas.horizon import TYPE_PREFIX as HORIZON_TYPE_PREFIX
from schemas.vsphere import ALARM_STORM_TYPE

COLOURS = {"red": "#d32f2f", "yellow": "#f9a825", "green": "#2e7d32", "gray": "#9e9e9e"}
EMOJI = {
    "red": ":red_circle:",
    "yellow": ":large_yellow_circle:",
    "green": ":large_green_circle:",
    "gray": ":white_circle:",
}
SEVERITY = ("red", "yellow", "gray", "green")  # worst first, for a digest's colour
# a Horizon event's severity as an alarm status (UNKNOWN and anything new: gray)
HORIZON_STATUS = {
    "AUDIT_FAIL": "red",
    "ERROR": "red",
    "WARNING": "yellow",
    "AUDIT_SUCCESS": "green",
    "INFO": "green",
}
DIGEST_TOP = 10
MAX_TEXT = 2900  # Slack cuts section text at 3,000 characters


@dataclass(frozen=True)
class Alarm:
    status: str
    previous: str | None
    name: str
    description: str
    entity: str
    vcenter: str
    time: datetime | None
    message: str

    @classmethod
    def from_event(cls, event: BaseCloudEvent) -> Alarm:
        data = _mapping(event.get_data())
        if event.get_type() == ALARM_STORM_TYPE:
            return cls._of_storm(event, data)
        if is_horizon(event):
            return cls._of_horizon(event, data)
        info = _mapping(data.get("AlarmInfo"))
        alarm_ref = _mapping(data.get("Alarm"))
        entity = _mapping(data.get("Entity"))
        status = str(data.get("To") or "gray").lower()
        time = event.get_attributes().get("time")
        return cls(
            status=status if status in COLOURS else "gray",
            previous=str(data["From"]).lower() if data.get("From") else None,
            name=str(info.get("Name") or alarm_ref.get("Name") or event.get_subject() or "event"),
            description=str(info.get("Description") or ""),
            entity=str(entity.get("Name") or _first_entity_name(data) or "unknown entity"),
            vcenter=urlsplit(str(event.get_source())).hostname or str(event.get_source()),
            time=time if isinstance(time, datetime) else None,
            message=str(data.get("FullFormattedMessage") or ""),
        )

    @classmethod
    def _of_storm(cls, event: BaseCloudEvent, data: dict[str, Any]) -> Alarm:
        """A storm summary as one line of a digest."""
        worst = str(data.get("worst") or "gray")
        time = event.get_attributes().get("time")
        return cls(
            status=worst if worst in COLOURS else "gray",
            previous=None,
            name=f"Alarm storm ({data.get('count')} alarms)",
            description="",
            entity=str(_mapping(data.get("entity")).get("name") or "unknown entity"),
            vcenter=urlsplit(str(event.get_source())).hostname or str(event.get_source()),
            time=time if isinstance(time, datetime) else None,
            message=str(data.get("message") or ""),
        )

    @classmethod
    def _of_horizon(cls, event: BaseCloudEvent, data: dict[str, Any]) -> Alarm:
        """A Horizon audit event: what it is about is its user, else its machine or pool."""
        severity = str(data.get("severity") or "UNKNOWN").upper()
        about = (
            data.get("user_id")
            or data.get("machine_dns_name")
            or data.get("desktop_pool_name")
            or data.get("application_pool_name")
        )
        time = event.get_attributes().get("time")
        return cls(
            status=HORIZON_STATUS.get(severity, "gray"),
            previous=None,
            name=f"Horizon {severity}: {data.get('type') or event.get_type()}",
            description="",
            entity=str(about or "Horizon"),
            vcenter=urlsplit(str(event.get_source())).hostname or str(event.get_source()),
            time=time if isinstance(time, datetime) else None,
            message=str(data.get("message") or ""),
        )


def is_horizon(event: BaseCloudEvent) -> bool:
    return str(event.get_type()).startswith(HORIZON_TYPE_PREFIX)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _first_entity_name(data: dict[str, Any]) -> str | None:
    for field in ("Vm", "Host", "Ds", "Net", "ComputeResource", "Datacenter"):
        ref = data.get(field)
        if isinstance(ref, dict) and ref.get("Name"):
            return str(ref["Name"])
    return None


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "unknown"


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def message_for(event: BaseCloudEvent) -> dict[str, Any]:
    """The message of one event: an AlarmStorm summary, or an alarm."""
    if event.get_type() == ALARM_STORM_TYPE:
        return storm_message(event)
    if is_horizon(event):
        return horizon_message(event)
    return alarm_message(event)


def horizon_message(event: BaseCloudEvent) -> dict[str, Any]:
    """A Horizon audit event: severity, type, message, and what it names."""
    data = _mapping(event.get_data())
    alarm = Alarm.from_event(event)
    named = [
        ("User", data.get("user_id")),
        ("Machine", data.get("machine_dns_name")),
        ("Desktop pool", data.get("desktop_pool_name")),
        ("Application pool", data.get("application_pool_name")),
        ("Module", data.get("module")),
    ]
    fields = [{"type": "mrkdwn", "text": f"*{label}*\n{value}"} for label, value in named if value]
    fields += [
        {"type": "mrkdwn", "text": f"*Horizon server*\n{alarm.vcenter}"},
        {"type": "mrkdwn", "text": f"*Time*\n{_when(alarm.time)}"},
    ]
    headline = f"{EMOJI[alarm.status]} *{alarm.name}*"
    if alarm.message:
        headline += f"\n{alarm.message}"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip(headline)}},
        # Slack shows at most 10 fields in a section
        {"type": "section", "fields": fields[:10]},
    ]
    return _coloured(alarm, f"[{alarm.status.upper()}] {alarm.name} on {alarm.vcenter}", blocks)


def storm_message(event: BaseCloudEvent) -> dict[str, Any]:
    """An AlarmStorm event: the entity, how many alarms of which, until when it is held."""
    data = _mapping(event.get_data())
    storm = Alarm.from_event(event)
    entity = _mapping(data.get("entity"))
    statuses = _mapping(data.get("statuses"))
    counts = "  ".join(
        f"{EMOJI[status]} {statuses[status]} {status}"
        for status in SEVERITY
        if isinstance(statuses.get(status), int) and statuses[status]
    )
    alarms = [item for item in data.get("alarms") or [] if isinstance(item, dict)]
    top = "\n".join(f"{item.get('count')} x {item.get('name')}" for item in alarms[:DIGEST_TOP])
    kind = f" ({entity['type']})" if entity.get("type") else ""
    until = _moment(data.get("windowEnd"))
    title = f"Alarm storm on {storm.entity}: more than {data.get('threshold')} alarms"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f":rotating_light: *{title}*"}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Entity*\n{storm.entity}{kind}"},
                {"type": "mrkdwn", "text": f"*vCenter*\n{storm.vcenter}"},
                {"type": "mrkdwn", "text": f"*Alarms*\n{counts or data.get('count')}"},
                {"type": "mrkdwn", "text": f"*Held back until*\n{_when(until)}"},
            ],
        },
    ]
    if top:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _clip(top)}})
    text = f"[STORM] {title} on {storm.vcenter}; the rest held back until {_when(until)}"
    return {
        "text": _clip(text),
        "attachments": [
            {"color": COLOURS[storm.status], "fallback": _clip(text), "blocks": blocks}
        ],
    }


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def alarm_message(event: BaseCloudEvent) -> dict[str, Any]:
    """`text`, and an attachment with the colour bar and the Block Kit layout."""
    alarm = Alarm.from_event(event)
    change = f"{alarm.previous} → {alarm.status}" if alarm.previous else alarm.status
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": _clip(
                    f"{EMOJI[alarm.status]} *{alarm.name}*"
                    + (f"\n{alarm.description}" if alarm.description else "")
                ),
            },
        },
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Status*\n{change}"},
                {"type": "mrkdwn", "text": f"*Entity*\n{alarm.entity}"},
                {"type": "mrkdwn", "text": f"*vCenter*\n{alarm.vcenter}"},
                {"type": "mrkdwn", "text": f"*Time*\n{_when(alarm.time)}"},
            ],
        },
    ]
    if alarm.message:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": _clip(alarm.message)}]}
        )
    summary = f"[{alarm.status.upper()}] {alarm.name}: {alarm.entity} on {alarm.vcenter}"
    return _coloured(alarm, summary, blocks)


def _coloured(alarm: Alarm, summary: str, blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """The message: `summary` (and the alarm's message) as the notification text, and
    the blocks in an attachment whose bar has the status's colour."""
    text = f"{summary}: {alarm.message}" if alarm.message else summary
    return {
        "text": _clip(text),
        "attachments": [
            {"color": COLOURS[alarm.status], "fallback": _clip(text), "blocks": blocks}
        ],
    }


def digest_message(events: Sequence[BaseCloudEvent]) -> dict[str, Any]:
    """One message for an alarm storm: counts by status, the top alarms and entities."""
    alarms = [Alarm.from_event(event) for event in events]
    statuses = Counter(alarm.status for alarm in alarms)
    worst = next(status for status in SEVERITY if statuses[status] or status == "green")
    times = [alarm.time for alarm in alarms if alarm.time is not None]
    span = f"{_when(min(times))} to {_when(max(times))}" if times else "unknown time"
    vcenters = sorted({alarm.vcenter for alarm in alarms})
    counts = "  ".join(
        f"{EMOJI[status]} {statuses[status]} {status}" for status in SEVERITY if statuses[status]
    )
    names = Counter(alarm.name for alarm in alarms).most_common(DIGEST_TOP)
    entities = Counter(alarm.entity for alarm in alarms).most_common(DIGEST_TOP)
    title = f"Alarm storm: {len(alarms)} alarms on {', '.join(vcenters)}"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f":rotating_light: *{title}*"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{counts}\n{span}"}},
        {
            "type": "section",
            "fields": [
                {
                    "type": "mrkdwn",
                    "text": _clip("*Alarms*\n" + "\n".join(f"{n} x {name}" for name, n in names)),
                },
                {
                    "type": "mrkdwn",
                    "text": _clip("*Entities*\n" + "\n".join(f"{n} x {e}" for e, n in entities)),
                },
            ],
        },
    ]
    plain = ", ".join(f"{statuses[status]} {status}" for status in SEVERITY if statuses[status])
    text = f"{title} ({plain}), {span}"
    return {
        "text": _clip(text),
        "attachments": [{"color": COLOURS[worst], "fallback": _clip(text), "blocks": blocks}],
    }
