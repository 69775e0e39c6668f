"""The stream processors (Faust worker): alarm enrichment, routes and user processors."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import Field, field_validator, model_validator

from vcstream.settings.base import ConfigModel, Duration

ALARM_STATUS_CHANGED = "com.vmware.vsphere.AlarmStatusChangedEvent.v0*"
# schemas.vsphere.ALARM_STORM_TYPE (settings depend on nothing else in the repo)
ALARM_STORM = "com.vmware.vsphere.vcstream.AlarmStorm.v0"


class FieldCondition(ConfigModel):
    """One test on a field of the event's data; exactly one operator is given."""

    field: str = Field(
        description="Dotted path into the event's data, e.g. `To` or `Vm.Name` or `AlarmInfo.Name`."
    )
    equals: Any = Field(None, description="The field equals this value.")
    in_: list[Any] | None = Field(None, alias="in", description="The field is one of these.")
    not_in: list[Any] | None = Field(None, description="The field is none of these.")
    matches: str | None = Field(None, description="The field, as text, matches this glob.")
    exists: bool | None = Field(None, description="The field is present and not null (or not).")

    @model_validator(mode="after")
    def _one_operator(self) -> FieldCondition:
        operators = {"equals": "equals", "in_": "in", "not_in": "notIn", "matches": "matches"}
        operators["exists"] = "exists"
        given = [alias for name, alias in operators.items() if name in self.model_fields_set]
        if len(given) != 1:
            raise ValueError(
                f"condition on {self.field!r} needs exactly one of equals, in, notIn, "
                f"matches, exists (got {', '.join(given) or 'none'})"
            )
        return self


class EventFilter(ConfigModel):
    """Which events: CloudEvent type and subject globs, and conditions on data (all must hold)."""

    types: list[str] = Field(
        default_factory=lambda: ["*"],
        description="Globs on the CloudEvent `type`, e.g. `com.vmware.vsphere.Vm*.v0`.",
    )
    subjects: list[str] = Field(
        default_factory=lambda: ["*"], description="Globs on the CloudEvent `subject`."
    )
    where: list[FieldCondition] = Field(
        default_factory=list, description="Conditions on data fields; all must hold."
    )


class RouteSettings(EventFilter):
    name: str = Field(description="Label for metrics and dead letters, e.g. `alarms`.")
    topic: str = Field(description="Output topic the matching events are written to.")
    include_suppressed: bool = Field(
        False,
        description="Also take events a stream processor suppressed (alarms of a storm or "
        "of a host in maintenance, marked with the extension `suppressed`); the default "
        "audit route does.",
    )


class EnrichmentSettings(ConfigModel):
    enabled: bool = Field(True, description="Join Alarm*Events with their alarm definition.")
    types: list[str] = Field(
        default_factory=lambda: ["com.vmware.vsphere.Alarm*Event.v0"],
        description="Globs on `type` of the events to enrich (they must carry data.Alarm).",
    )
    type_suffix: str = Field(
        ".AlarmInfo",
        description="Appended to `type` of an enriched event (vsphere-alarm-server's convention).",
    )
    wait_for_definition: Duration = Field(
        timedelta(seconds=10),
        description="How long an alarm event waits for a definition not yet known before it is "
        "emitted unenriched with the extension `enrichment=missing`.",
    )


class ProcessorsSettings(ConfigModel):
    packages: list[str] = Field(
        default_factory=list,
        description="Python packages whose modules are scanned for processors, besides "
        "`streams.processors`.",
    )
    disabled: list[str] = Field(
        default_factory=list,
        description="Names of discovered processors not to run; a name no processor has "
        "stops the worker with a configuration error.",
    )


def _alarms_to_red_or_yellow() -> list[FieldCondition]:
    return [FieldCondition.model_validate({"field": "To", "in": ["red", "yellow"]})]


def _whole_seconds(value: timedelta) -> timedelta:
    # Faust lays windows out on whole seconds (it truncates a size to an int)
    seconds = value.total_seconds()
    if seconds < 1 or seconds != int(seconds):
        raise ValueError("a window is a whole number of seconds, at least 1")
    return value


class AlarmStormSettings(ConfigModel):
    """More than `threshold` alarms on one entity within `window` become one AlarmStorm event."""

    enabled: bool = Field(
        False,
        description="Turn an alarm storm on one entity into one "
        f"`{ALARM_STORM}` event (routed to `topics.alarms`, which the Slack sink "
        "renders); the storm's further alarms are suppressed.",
    )
    threshold: int = Field(
        10, ge=1, description="Alarms on one entity a window lets through before the storm event."
    )
    window: Duration = Field(
        timedelta(minutes=5),
        description="Tumbling window per entity, in record time (the Kafka timestamp); its "
        "alarms past the threshold are suppressed until it ends.",
    )
    types: list[str] = Field(
        default_factory=lambda: ["com.vmware.vsphere.AlarmStatusChangedEvent.v0"],
        description="Globs on `type` of the alarm events that count (as read, before "
        "enrichment adds its suffix).",
    )
    where: list[FieldCondition] = Field(
        default_factory=_alarms_to_red_or_yellow,
        description="Conditions on data fields of the events that count (default: those the "
        "alarms route takes, a change to red or yellow).",
    )

    _window = field_validator("window")(_whole_seconds)


class DuplicatesSettings(ConfigModel):
    """Events whose id was already read within `window` are dropped."""

    enabled: bool = Field(
        False,
        description="Drop an event whose id was read within `window` at another offset "
        "(a replay, a repeated write); a record read again after a crash is not a duplicate.",
    )
    window: Duration = Field(
        timedelta(minutes=10),
        description="How far apart in record time (the Kafka timestamp) a repeat is still "
        "caught: at least this, at most twice this. Costs a table write per event checked, "
        "and memory for the ids of three windows.",
    )
    types: list[str] = Field(
        default_factory=lambda: ["*"], description="Globs on `type` of the events checked."
    )

    _window = field_validator("window")(_whole_seconds)


class MaintenanceSettings(ConfigModel):
    """Alarms on hosts in maintenance mode (and on the VMs on them) are suppressed."""

    enabled: bool = Field(
        False,
        description="Suppress alarms on a host between its `EnteredMaintenanceModeEvent` and "
        "`ExitMaintenanceModeEvent`.",
    )
    include_vms: bool = Field(
        True, description="Also suppress alarms on entities that name the host (its VMs)."
    )
    types: list[str] = Field(
        default_factory=lambda: ["com.vmware.vsphere.Alarm*Event.v0"],
        description="Globs on `type` of the alarm events to suppress.",
    )
    max_duration: Duration | None = Field(
        timedelta(days=7),
        description="A host counts as in maintenance this long at most after it entered (in "
        "case its exit was never read); null: until it exits.",
    )


class StreamsSettings(ConfigModel):
    app_id: str = Field("vcstream-streams", description="Faust app id (consumer group).")
    data_dir: str = Field(".cache/streams", description="Faust's local table state.")
    commit_interval: Duration = Field(
        timedelta(seconds=1),
        description="How often consumed offsets are committed (after their outputs are written).",
    )
    session_timeout: Duration = Field(
        timedelta(seconds=30),
        description="How long the group waits for a silent worker before its partitions go "
        "to the others (and how long a restarted worker may wait to get them back).",
    )
    shutdown_grace: Duration = Field(
        timedelta(seconds=10),
        description="How long a stopping worker (SIGTERM) may take to write what is on its "
        "way and commit what it processed; past it the worker exits 1 at once, and the "
        "records after its last commit are read again by the next owner.",
    )
    enrichment: EnrichmentSettings = Field(default_factory=EnrichmentSettings)
    routes: list[RouteSettings] | None = Field(
        None,
        description="Where events go. Unset: alarm status changes to yellow/red go to "
        "`topics.alarms` (and AlarmStorm events, with `alarmStorm` on) and every event to "
        "`topics.audit` (suppressed ones too).",
    )
    audit: EventFilter = Field(
        default_factory=EventFilter,
        description="Which events the default audit route takes (with `routes` unset).",
    )
    processors: ProcessorsSettings = Field(default_factory=ProcessorsSettings)
    alarm_storm: AlarmStormSettings = Field(default_factory=AlarmStormSettings)
    duplicates: DuplicatesSettings = Field(default_factory=DuplicatesSettings)
    maintenance: MaintenanceSettings = Field(default_factory=MaintenanceSettings)

    def effective_routes(self, alarms_topic: str, audit_topic: str) -> list[RouteSettings]:
        """The configured routes, or the defaults (with the alarm storms' when it is on)."""
        if self.routes is not None:
            return self.routes
        routes = [
            RouteSettings.model_validate(
                {
                    "name": "alarms",
                    "topic": alarms_topic,
                    "types": [ALARM_STATUS_CHANGED],
                    "where": [{"field": "To", "in": ["red", "yellow"]}],
                }
            )
        ]
        if self.alarm_storm.enabled:
            storms = {"name": "alarm-storms", "topic": alarms_topic, "types": [ALARM_STORM]}
            routes.append(RouteSettings.model_validate(storms))
        audit = {"name": "audit", "topic": audit_topic, "includeSuppressed": True}
        routes.append(
            RouteSettings.model_validate({**audit, **self.audit.model_dump(by_alias=True)})
        )
        return routes
