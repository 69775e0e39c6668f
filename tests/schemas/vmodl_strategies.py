"""hypothesis strategies for pyVmomi objects of any vmodl type, built from the type info."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any, cast

from hypothesis import strategies as st
from pyVmomi import VmomiSupport, vim

MAX_DEPTH = 2
_TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)
# what an XML 1.0 document (a SOAP response) can hold: no control characters but tab and
# newline, no noncharacters
XML_TEXT = st.text(
    st.characters(blacklist_categories=["Cs", "Cc", "Cn"]) | st.sampled_from("\t\n"),
    max_size=12,
)
_INT_RANGES = {
    VmomiSupport.byte: (-(2**7), 2**7 - 1),
    VmomiSupport.short: (-(2**15), 2**15 - 1),
    VmomiSupport.long: (-(2**63), 2**63 - 1),
}
_ENTITY_TYPES = (vim.VirtualMachine, vim.HostSystem, vim.Datastore, vim.ClusterComputeResource)


@cache
def event_classes() -> tuple[type, ...]:
    """Every event class pyVmomi knows (vim.event.Event and all its subclasses)."""
    classes = []
    for name in VmomiSupport.ListDataTypes():
        cls = VmomiSupport.GetVmodlType(name)
        if isinstance(cls, type) and issubclass(cls, vim.event.Event):
            classes.append(cls)
    return tuple(sorted(classes, key=lambda c: c.__name__))


def events(text: st.SearchStrategy[str] = _TEXT) -> st.SearchStrategy[Any]:
    return st.sampled_from(event_classes()).flatmap(lambda cls: data_objects(cls, 0, text))


@cache
def data_objects(
    cls: type, depth: int, text: st.SearchStrategy[str] = _TEXT
) -> st.SearchStrategy[Any]:
    """Objects of `cls` with every property drawn (optional ones sometimes unset)."""
    if depth > MAX_DEPTH:  # deep enough: an object with nothing set
        return st.builds(cls)
    fields = {
        prop.name: _optional(prop, depth, text)
        for prop in cls._GetPropertyList()  # type: ignore[attr-defined]
        if prop.name not in ("dynamicType", "dynamicProperty")
    }
    return st.fixed_dictionaries(fields).map(
        lambda values: cls(**{k: v for k, v in values.items() if v is not None})
    )


def _optional(prop: Any, depth: int, text: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    optional = bool(prop.flags & VmomiSupport.F_OPTIONAL)
    value = values_of(prop.type, depth + 1, min_items=0 if optional else 1, text=text)
    return st.none() | value if optional else value


@cache
def values_of(
    cls: type, depth: int, min_items: int = 0, text: st.SearchStrategy[str] = _TEXT
) -> st.SearchStrategy[Any]:
    if issubclass(cls, list):
        item = cls.Item  # type: ignore[attr-defined]
        items = values_of(item, depth, text=text)
        return st.lists(items, min_size=min_items, max_size=2).map(cls)
    if cls is bool:
        return st.booleans()
    if issubclass(cls, int):
        low, high = _INT_RANGES.get(cls, (-(2**31), 2**31 - 1))
        return st.integers(low, high).map(cls)
    if issubclass(cls, float):
        return st.floats(allow_nan=False, allow_infinity=False).map(cls)
    if issubclass(cls, datetime):
        return st.datetimes(datetime(1970, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC))
    if issubclass(cls, bytes):
        return st.binary(max_size=8).map(cls)
    if issubclass(cls, VmomiSupport.Enum):
        return st.sampled_from(cls.values)  # type: ignore[attr-defined]
    if cls is type:
        return st.sampled_from(_ENTITY_TYPES)
    if cls is VmomiSupport.ManagedMethod:  # e.g. TaskInfo.name
        return st.sampled_from([vim.VirtualMachine.PowerOn, vim.HostSystem.EnterMaintenanceMode])
    if issubclass(cls, str):
        return text
    if issubclass(cls, VmomiSupport.ManagedObject):
        kind = cls if cls is not VmomiSupport.ManagedObject else vim.VirtualMachine
        return st.from_regex(r"[a-z]{2,6}-[0-9]{1,4}", fullmatch=True).map(kind)
    if issubclass(cls, VmomiSupport.DataObject):
        return data_objects(cast(type, cls), depth, text)
    # anyType
    return text | st.integers(-(2**31), 2**31 - 1)
