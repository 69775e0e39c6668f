"""The `alarm_definition` record's `alarmInfo`: vSphere's whole AlarmInfo as VEBA/Go JSON,
kept as text in the Avro record (its shape is govmomi's, too open for an Avro schema)
and put under `data.AlarmInfo` by enrichment."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson


def alarm_info_text(info: Any) -> str:
    """`alarmInfo` for an AlarmInfo already in Go JSON form (`vmodl_json.to_go_json`)."""
    return json.dumps(info, separators=(",", ":"))


def alarm_info(definition: Mapping[str, Any]) -> Any:
    """The AlarmInfo of a decoded `alarm_definition` record, as VEBA functions read it."""
    return orjson.loads(definition["alarmInfo"])
