"""Which events a route or processor takes: globs on type and subject, conditions on data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Protocol

from vcstream.settings.streams import EventFilter, FieldCondition

_MISSING = object()


class Readable(Protocol):
    """What a selector asks of an event: the SDK's CloudEvent, or a record read lazily
    (`streams.reading.Reading`), whose data is parsed only if a condition reads it."""

    def get_type(self) -> str: ...
    def get_subject(self) -> str | None: ...
    def get_data(self) -> Any: ...
    def get_extension(self, name: str) -> Any: ...


# distinct strings a GlobSet remembers its answer for: CloudEvent types and subjects come
# from vSphere's event classes (some 1,800) and EventEx ids, so this holds them all, while
# a stream of ever-new strings cannot grow memory without bound
MEMO_LIMIT = 8192


class GlobSet:
    """fnmatch globs, with the answer per tested string remembered.

    Every event is tested against every route's and processor's globs, and the strings
    tested (types, subjects) repeat endlessly: a lookup is far cheaper than the globs.
    """

    __slots__ = ("_everything", "_memo", "globs")

    def __init__(self, globs: Sequence[str]) -> None:
        self.globs = tuple(globs)
        self._everything = "*" in self.globs
        self._memo: dict[str, bool] = {}

    def matches(self, text: str) -> bool:
        if self._everything:
            return True
        found = self._memo.get(text)
        if found is None:
            found = any(fnmatchcase(text, glob) for glob in self.globs)
            if len(self._memo) < MEMO_LIMIT:
                self._memo[text] = found
        return found


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
    _types: GlobSet = field(init=False, repr=False, compare=False)
    _subjects: GlobSet = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_types", GlobSet(self.types))
        object.__setattr__(self, "_subjects", GlobSet(self.subjects))

    @classmethod
    def of(cls, spec: EventFilter) -> Selector:
        return cls(tuple(spec.types), tuple(spec.subjects), tuple(spec.where))

    def matches(self, event: Readable) -> bool:
        if not self._types.matches(event.get_type()):
            return False
        if not self._subjects.matches(event.get_subject() or ""):
            return False
        if self.where:
            data = event.get_data()
            return all(condition_holds(condition, data) for condition in self.where)
        return True
