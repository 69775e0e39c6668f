"""Alarm definitions, published to a compacted topic for the alarm-enrichment stream.

Keyed `<vCenter instance UUID>/<alarm moref>` (e.g. `.../alarm-384`), Avro
`alarm_definition`, a tombstone when the alarm is removed. Published on start (the
whole set, reconciled against what the topic already holds) and whenever an
AlarmCreatedEvent, AlarmReconfiguredEvent or AlarmRemovedEvent passes, inside the same
transaction as that event, so the definition is never behind the events that changed it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from pyVmomi import vim as _vim
from pyVmomi import vmodl as _vmodl

from producer import metrics
from producer.compacted import read_compacted
from producer.position import as_utc_micros
from schemas import avro
from schemas.alarm_definition import alarm_info_text
from schemas.record import KafkaRecord
from schemas.vmodl_json import event_class_name, moref, to_go_json
from schemas.vsphere import VCenterIdentity
from vcstream.settings.kafka import KafkaSettings

log = logging.getLogger(__name__)

vim: Any = _vim
vmodl: Any = _vmodl
SCHEMA = "alarm_definition"
CHANGED = frozenset({"AlarmCreatedEvent", "AlarmReconfiguredEvent"})
REMOVED = "AlarmRemovedEvent"


def definition_key(identity: VCenterIdentity, alarm_id: str) -> bytes:
    return f"{identity.instance_uuid}/{alarm_id}".encode()


def summarize(expression: Any) -> list[dict[str, str | None]]:
    """An alarm expression tree flattened to its leaves.

    Metric and state expressions carry operator and yellow/red thresholds as vSphere
    has them (metric thresholds in the counter's unit, percentages in hundredths). An
    event expression has no threshold: its `yellow` or `red` is "true" when the event
    turns the alarm that colour, and `eventTypeId` names the event.
    """
    if expression is None:
        return []
    if isinstance(expression, vim.alarm.OrAlarmExpression | vim.alarm.AndAlarmExpression):
        return [leaf for child in expression.expression or [] for leaf in summarize(child)]
    leaf: dict[str, str | None] = {
        "kind": event_class_name(expression),
        "operator": None,
        "metric": None,
        "statePath": None,
        "eventTypeId": None,
        "yellow": None,
        "red": None,
    }
    if isinstance(expression, vim.alarm.MetricAlarmExpression):
        metric = expression.metric
        leaf["operator"] = str(expression.operator)
        leaf["metric"] = f"{metric.counterId}/{metric.instance or ''}" if metric else None
        leaf["yellow"] = _text(expression.yellow)
        leaf["red"] = _text(expression.red)
    elif isinstance(expression, vim.alarm.StateAlarmExpression):
        leaf["operator"] = str(expression.operator)
        leaf["statePath"] = str(expression.statePath)
        leaf["yellow"] = _text(expression.yellow)
        leaf["red"] = _text(expression.red)
    elif isinstance(expression, vim.alarm.EventAlarmExpression):
        event_type = expression.eventType
        leaf["eventTypeId"] = expression.eventTypeId or (
            str(getattr(event_type, "_wsdlName", event_type)) if event_type is not None else None
        )
        status = str(expression.status) if expression.status else None
        leaf["yellow"] = "true" if status == "yellow" else None
        leaf["red"] = "true" if status == "red" else None
    return [leaf]


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def definition_record(identity: VCenterIdentity, info: Any) -> KafkaRecord:
    """One AlarmInfo as its compacted-topic record."""
    entity = moref(info.entity) if info.entity is not None else {"Type": "", "Value": ""}
    alarm_id = str(info.alarm._moId)
    value = avro.encode(
        SCHEMA,
        {
            "vcenterUuid": identity.instance_uuid,
            "source": identity.source,
            "alarm": alarm_id,
            "name": str(info.name or ""),
            "systemName": info.systemName or None,
            "description": str(info.description or ""),
            "enabled": bool(info.enabled),
            "entityType": entity["Type"],
            "entityValue": entity["Value"],
            "lastModifiedTime": as_utc_micros(info.lastModifiedTime),
            "lastModifiedUser": info.lastModifiedUser or None,
            "expressionSummary": summarize(info.expression),
            "alarmInfo": alarm_info_text(to_go_json(info)),
        },
    )
    return KafkaRecord(value=value, key=definition_key(identity, alarm_id))


def tombstone(identity: VCenterIdentity, alarm_id: str) -> KafkaRecord:
    return KafkaRecord(value=None, key=definition_key(identity, alarm_id))


def alarm_infos(content: Any, alarms: Iterable[Any]) -> list[Any]:
    """The `info` of each alarm, in one PropertyCollector round trip."""
    objects = [vmodl.query.PropertyCollector.ObjectSpec(obj=alarm) for alarm in alarms]
    if not objects:
        return []
    collector = vmodl.query.PropertyCollector
    spec = collector.FilterSpec(
        objectSet=objects,
        propSet=[collector.PropertySpec(type=vim.alarm.Alarm, pathSet=["info"])],
    )
    infos = []
    for result in content.propertyCollector.RetrieveContents([spec]) or []:
        for prop in result.propSet or []:
            if prop.name == "info" and prop.val is not None:
                infos.append(prop.val)
    return infos


def stored_definitions(
    kafka: KafkaSettings, topic: str, identity: VCenterIdentity
) -> dict[bytes, bytes]:
    """The definitions of this vCenter the topic holds now (tombstoned ones left out)."""
    prefix = f"{identity.instance_uuid}/".encode()
    return {key: value for key, value in read_compacted(kafka, topic, prefix).items() if value}


def snapshot(
    content: Any, identity: VCenterIdentity, stored: dict[bytes, bytes]
) -> list[KafkaRecord]:
    """What to write so the topic holds exactly the vCenter's alarms now.

    Definitions that did not change are not written again; alarms the topic knows but
    the vCenter no longer has (removed while the producer was away) get a tombstone.
    """
    records: list[KafkaRecord] = []
    current: set[bytes] = set()
    for info in alarm_infos(content, content.alarmManager.GetAlarm(None) or []):
        record = definition_record(identity, info)
        assert record.key is not None
        current.add(record.key)
        if stored.get(record.key) != record.value:
            records.append(record)
    for key in stored.keys() - current:
        records.append(KafkaRecord(value=None, key=key))
    return records


def changes_definition(event: Any) -> bool:
    """Whether `event` creates, reconfigures or removes an alarm (cheap: no vCenter call)."""
    name = event_class_name(event)
    return name in CHANGED or name == REMOVED


def changes_for(content: Any, identity: VCenterIdentity, event: Any) -> list[KafkaRecord]:
    """The definition record an alarm event calls for (none for other events)."""
    if not changes_definition(event):
        return []
    name = event_class_name(event)
    argument = getattr(event, "alarm", None)
    alarm = getattr(argument, "alarm", None)
    if alarm is None:
        log.warning("%s (key %s) names no alarm: definition not updated", name, event.key)
        return []
    if name == REMOVED:
        return [tombstone(identity, str(alarm._moId))]
    try:
        infos = alarm_infos(content, [alarm])
    except vmodl.fault.ManagedObjectNotFound:
        infos = []
    if not infos:  # removed since: its AlarmRemovedEvent follows and tombstones it
        log.info("alarm %s from %s is gone already", alarm._moId, name)
        return []
    return [definition_record(identity, infos[0])]


def count(identity: VCenterIdentity, records: Iterable[KafkaRecord]) -> None:
    for record in records:
        action = "removed" if record.value is None else "published"
        metrics.ALARM_DEFINITIONS.labels(identity.name, action).inc()
