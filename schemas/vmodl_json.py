"""pyVmomi objects as the JSON VEBA emits: Go's `encoding/json` of the govmomi struct.

VEBA's vCenter source (sources-for-knative, every release up to today) is built on
govmomi v0.24.1-0.20210127152625-854ba4efe87e, whose `types` have no json tags: Go
marshals every exported field under its Go name, never omits one, and writes the zero
value of the field's Go type when vCenter did not send it. This module reproduces
that, for any vmodl data object, by walking the type's property list (cached per type):

| vmodl property | Go field | JSON when unset |
|---|---|---|
| string, enum, anyURI, typeName, propertyPath | `string` | `""` |
| int, long, short, byte, float, double | `int32`, ... | `0` (a few ints are pointers: `null`) |
| boolean | `bool`, or `*bool` when optional | `false` / `null` |
| dateTime | `time.Time`, or `*time.Time` when optional | `"0001-01-01T00:00:00Z"` / `null` |
| data object, MoRef | `*T` when optional | `null` |
| array, base64Binary | slice | `null` (SOAP cannot tell empty from absent) |
| anyType | `interface{}` | `null` |

Field names are the vmodl names with the first letter upper-cased (`chainId` →
`ChainId`); `DynamicData` contributes no fields (`dynamicType`/`dynamicProperty` are
not marshalled by govmomi). Times are RFC 3339 in UTC with Go's trimmed fraction.
Binary is standard base64 (Go's `[]byte`). An array inside an `anyType` is Go's
`ArrayOfXxx` struct: `{"String": [...]}`.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pyVmomi import VmomiSupport

Converter = Callable[[Any], Any]
# (Go field name, pyVmomi attribute name, conversion of the attribute's value)
Field = tuple[str, str, Converter]

GO_ZERO_TIME = "0001-01-01T00:00:00Z"
# The vmodl version whose field set VEBA's govmomi (2021-01, vSphere 7.0 U1) knows: pass
# it as `max_version` for VEBA's exact field set; vcstream writes newer fields as well.
VEBA_VMODL_VERSION = "vim.version.v7_0_1_0"
# DynamicData's own properties: govmomi's DynamicData struct is empty
_SKIPPED_PROPERTIES = frozenset({"dynamicType", "dynamicProperty"})
# govmomi's generator (gen/vim_wsdl.rb, `pointer_type?`) makes these ints pointers, so
# they are `null`, not 0, when unset; UnitNumber always, the others when optional
_POINTER_INTS_ALWAYS = frozenset({"UnitNumber"})
_POINTER_INTS_IF_OPTIONAL = frozenset(
    {
        "IpPoolId",
        "OwnerId",
        "GroupId",
        "MaxWaitSeconds",
        "Reservation",
        "Limit",
        "OverheadLimit",
        "ResourceReductionToToleratePercent",
    }
)


@dataclass(frozen=True, slots=True)
class GoEvent:
    """An event read straight into its Go JSON (`schemas.vmodl_soap`), with what the
    producer needs of it besides: the class name, key and createdTime."""

    class_name: str
    data: dict[str, Any]  # what `to_go_json` writes for the event
    key: int
    createdTime: datetime


def event_class_name(event: Any) -> str:
    """The vmodl class of an event, as VEBA names it (e.g. "VmPoweredOnEvent")."""
    if isinstance(event, GoEvent):
        return event.class_name
    return str(type(event)._wsdlName)


def to_go_json(obj: Any, max_version: str | None = None) -> Any:
    """`obj` (data object, MoRef, array or primitive) as Go would marshal it.

    `max_version` (a vmodl version such as "vim.version.v7_0_1_0") leaves out the
    properties vSphere added after it, to reproduce the field set of an older govmomi
    exactly; by default every property pyVmomi knows is written.
    """
    if isinstance(obj, GoEvent):
        if max_version is not None:
            raise ValueError("an event read as Go JSON has every field: no max_version")
        return obj.data
    if isinstance(obj, list):
        return [_any_value(item, max_version) for item in obj] if obj else None
    return _any_value(obj, max_version)


def go_time(moment: datetime) -> str:
    """RFC 3339 in UTC with Go's RFC3339Nano fraction (trailing zeros trimmed)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    # isoformat (C) writes the fraction only when there is one, as 6 digits: trimming
    # its zeros gives Go's; it also pads years below 1000 to 4 digits, as Go does
    text = moment.isoformat()
    return (text.rstrip("0") if moment.microsecond else text) + "Z"


def go_field_name(vmodl_name: str) -> str:
    """govmomi's field name: leading underscore dropped, first letter upper-cased."""
    name = vmodl_name.removeprefix("_")
    return name[:1].upper() + name[1:]


def moref(ref: Any) -> dict[str, str]:
    return {"Type": str(ref._wsdlName), "Value": str(ref._moId)}


# ---- per-type field lists -------------------------------------------------------------

_FIELD_CACHE: dict[tuple[type, str | None], list[Field]] = {}


def fields_of(cls: type, max_version: str | None = None) -> list[Field]:
    """The Go fields of a data object type, in Go's order (parents first); cached."""
    cache_key = (cls, max_version)
    cached = _FIELD_CACHE.get(cache_key)
    if cached is None:
        cached = [
            (go_field_name(prop.name), prop.name, _converter(prop, max_version))
            for prop in cls._GetPropertyList()  # type: ignore[attr-defined]
            if prop.name not in _SKIPPED_PROPERTIES and _included(prop, max_version)
        ]
        _FIELD_CACHE[cache_key] = cached
    return cached


def _included(prop: Any, max_version: str | None) -> bool:
    if max_version is None:
        return True
    return bool(VmomiSupport.IsChildVersion(max_version, prop.version))  # type: ignore[attr-defined,no-untyped-call]


def _data_object(obj: Any, max_version: str | None) -> dict[str, Any]:
    # Go marshals the concrete type behind an interface: always the value's own type
    return {
        go_name: convert(getattr(obj, attr))
        for go_name, attr, convert in fields_of(type(obj), max_version)
    }


def _converter(prop: Any, max_version: str | None) -> Converter:
    optional = bool(prop.flags & VmomiSupport.F_OPTIONAL)
    ptype = prop.type
    if issubclass(ptype, list):
        return _array_converter(ptype.Item, max_version)
    name = go_field_name(prop.name)
    if ptype is bool:
        unset_bool = None if optional else False
        return lambda v: unset_bool if v is None else v
    if issubclass(ptype, int):
        pointer = name in _POINTER_INTS_ALWAYS or (optional and name in _POINTER_INTS_IF_OPTIONAL)
        unset_int = None if pointer else 0
        return lambda v: unset_int if v is None else int(v)
    if issubclass(ptype, float):
        return lambda v: 0 if v is None else float(v)
    if issubclass(ptype, datetime):
        unset_time = None if optional else GO_ZERO_TIME
        return lambda v: unset_time if v is None else go_time(v)
    if issubclass(ptype, bytes):
        return _binary
    if ptype is type:
        return lambda v: "" if v is None else _type_name(v)
    if ptype is VmomiSupport.ManagedMethod:
        return lambda v: "" if v is None else _method_name(v)
    if issubclass(ptype, str):
        return lambda v: "" if v is None else str(v)
    if issubclass(ptype, VmomiSupport.ManagedObject):
        return lambda v: None if v is None else moref(v)
    if issubclass(ptype, VmomiSupport.DataObject):
        return lambda v: None if v is None else _data_object(v, max_version)
    # anyType (pyVmomi's `object`) and anything else: by the value's runtime type
    return lambda v: _any_value(v, max_version)


def _array_converter(item: type, max_version: str | None) -> Converter:
    if item is VmomiSupport.byte:
        return _byte_array  # Go's []byte marshals as base64, not as a list
    if issubclass(item, VmomiSupport.DataObject):
        return lambda v: [_data_object(x, max_version) for x in v] if v else None
    if issubclass(item, VmomiSupport.ManagedObject):
        return lambda v: [moref(x) for x in v] if v else None
    return lambda v: [_any_value(x, max_version) for x in v] if v else None


def _binary(value: bytes | None) -> str | None:
    return None if value is None else base64.b64encode(value).decode("ascii")


def _byte_array(value: list[int] | None) -> str | None:
    if not value:
        return None
    return base64.b64encode(bytes(b & 0xFF for b in value)).decode("ascii")


def _type_name(value: Any) -> str:
    return str(value._wsdlName) if hasattr(value, "_wsdlName") else str(value)


def _method_name(value: Any) -> str:
    """A methodName (e.g. TaskInfo.name) as on the wire: "PowerOnVM_Task"."""
    info = getattr(value, "info", None)
    # pyVmomi keeps names it cannot resolve (vcsim sends some) as UnknownManagedMethod
    return str(info.wsdlName) if info is not None else str(getattr(value, "name", value))


def _any_value(value: Any, max_version: str | None) -> Any:
    """A value whose Go type is decided at run time (anyType, array items, the root)."""
    if value is None or isinstance(value, bool | int | str):
        return value if not isinstance(value, int) or isinstance(value, bool) else int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, datetime):
        return go_time(value)
    if isinstance(value, bytes):
        return _binary(value)
    if isinstance(value, VmomiSupport.ManagedObject):
        return moref(value)
    if isinstance(value, VmomiSupport.DataObject):
        return _data_object(value, max_version)
    if isinstance(value, type):
        return _type_name(value)
    if isinstance(value, VmomiSupport.ManagedMethod):
        return _method_name(value)
    if isinstance(value, list):
        return _array_of(value, max_version)
    raise TypeError(f"no Go JSON encoding for a {type(value).__name__}")


def _array_of(value: list[Any], max_version: str | None) -> dict[str, Any]:
    """An array held by an anyType: govmomi's `ArrayOfXxx{Xxx: [...]}` struct."""
    item = getattr(type(value), "Item", None)
    if item is None:
        item = type(value[0]) if value else str
    element = go_field_name(VmomiSupport.GetWsdlName(item))
    return {element: [_any_value(x, max_version) for x in value] or None}
