"""Which events a route or processor takes: globs on type and subject, conditions on data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from vcstream.settings.streams import EventFilter, FieldCondition

_MISSING = object()


def field_value(data: Any, path: str) -> Any:
    """`Vm.Name` in data, or _MISSING; a path never raises, whatever the data's shape."""
    value = data
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def condition_holds(condition: FieldCondition, data: Any) -> bool:
    value = field_value(data, condition.field)
    given = condition.model_fields_set
    if "exists" in given:
        present = value is not _MISSING and value is not None
        return present == bool(condition.exists)
    if value is _MISSING:
        return False
    if "equals" in given:
        return bool(value == condition.equals)
    if "in_" in given:
        return value in (condition.in_ or [])
    if "not_in" in given:
        return value not in (condition.not_in or [])
    return fnmatchcase("" if value is None else str(value), condition.matches or "")


@dataclass(frozen=True)
class Selector:
    """An EventFilter ready to test events with."""

    types: Sequence[str] = ("*",)
    subjects: Sequence[str] = ("*",)
    where: Sequence[FieldCondition] = field(default_factory=tuple)

    @classmethod
    def of(cls, spec: EventFilter) -> Selector:
        return cls(tuple(spec.types), tuple(spec.subjects), tuple(spec.where))

    def matches(self, event: CloudEvent) -> bool:
        if not any(fnmatchcase(event.get_type(), glob) for glob in self.types):
            return False
        if self.subjects != ("*",):
            subject = event.get_subject() or ""
            if not any(fnmatchcase(subject, glob) for glob in self.subjects):
                return False
        if self.where:
            data = event.get_data()
            return all(condition_holds(condition, data) for condition in self.where)
        return True
