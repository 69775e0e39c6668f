"""The stream processors (Faust worker): alarm enrichment, routes and user processors."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import Field, model_validator

from vcstream.settings.base import ConfigModel, Duration

ALARM_STATUS_CHANGED = "com.vmware.vsphere.AlarmStatusChangedEvent.v0*"


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
        default_factory=list, description="Names of discovered processors not to run."
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
    enrichment: EnrichmentSettings = Field(default_factory=EnrichmentSettings)
    routes: list[RouteSettings] | None = Field(
        None,
        description="Where events go. Unset: alarm status changes to yellow/red go to "
        "`topics.alarms` and every event to `topics.audit` (suppressed ones too).",
    )
    audit: EventFilter = Field(
        default_factory=EventFilter,
        description="Which events the default audit route takes (with `routes` unset).",
    )
    processors: ProcessorsSettings = Field(default_factory=ProcessorsSettings)

    def effective_routes(self, alarms_topic: str, audit_topic: str) -> list[RouteSettings]:
        """The configured routes, or the two defaults."""
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
        audit = {"name": "audit", "topic": audit_topic, "includeSuppressed": True}
        routes.append(
            RouteSettings.model_validate({**audit, **self.audit.model_dump(by_alias=True)})
        )
        return routes
