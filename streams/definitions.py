"""Alarm definitions by (CloudEvents source, alarm moref), over the compacted topic's table.

The table is keyed as the topic is, `<vCenter instance UUID>/<alarm moref>`, but an alarm
event carries only its `source` (the vCenter's SDK URL), not the instance UUID. Each
definition record carries both, so a small side index `source -> {instance UUID}` is
built from the table's own values and rebuilt when the table has changed and a lookup
misses. Keying by the record key of the event instead would tie enrichment to how the
producer keys records; `source` is an attribute of the event itself.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from schemas import avro
from streams import metrics
from streams.enrich import AlarmRef

log = logging.getLogger(__name__)

SCHEMA = "alarm_definition"


class DefinitionIndex:
    def __init__(self, table: Mapping[Any, Any]) -> None:
        self._table = table
        self._instances: dict[str, set[str]] = {}
        self._indexed_size = -1
        # the last decoded definition per key, with the payload it came from: every alarm
        # event looks one up, and Avro decoding it each time was a visible share of the CPU
        self._decoded: dict[Any, tuple[bytes, dict[str, Any] | None]] = {}

    def lookup(self, ref: AlarmRef) -> dict[str, Any] | None:
        found = self._find(ref)
        if found is None and len(self._table) != self._indexed_size:
            self._reindex()
            found = self._find(ref)
        return found

    def _find(self, ref: AlarmRef) -> dict[str, Any] | None:
        for instance in self._instances.get(ref.source, ()):
            key = _key(instance, ref.alarm)
            payload = self._table.get(key)
            if payload is None:
                continue
            definition = self._decode_cached(key, bytes(payload))
            if definition is not None and definition["source"] == ref.source:
                return definition
        return None

    def _decode_cached(self, key: Any, payload: bytes) -> dict[str, Any] | None:
        cached = self._decoded.get(key)
        if cached is not None and cached[0] == payload:
            return cached[1]
        definition = _decode(payload)
        self._decoded[key] = (payload, definition)
        return definition

    def _reindex(self) -> None:
        instances: dict[str, set[str]] = {}
        for payload in list(self._table.values()):
            definition = _decode(payload) if payload is not None else None
            if definition is not None:
                instances.setdefault(definition["source"], set()).add(definition["vcenterUuid"])
        self._instances = instances
        self._indexed_size = len(self._table)
        self._decoded.clear()  # forget definitions since removed
        metrics.DEFINITIONS.set(self._indexed_size)


def _key(instance: str, alarm: str) -> Any:
    return f"{instance}/{alarm}".encode()


def _decode(payload: Any) -> dict[str, Any] | None:
    try:
        return avro.decode(SCHEMA, bytes(payload))
    except (avro.AvroError, TypeError, ValueError) as exc:
        # a definition the producer wrote wrongly must not stop enrichment of the others
        metrics.BAD_DEFINITIONS.inc()
        log.warning("unreadable alarm definition in the table: %s", exc)
        return None
