"""VEBA/Go JSON back into pyVmomi objects: the inverse of `schemas.vmodl_json.to_go_json`.

Go's encoding carries no type names, so a value whose declared type is a base type
(e.g. an alarm's `Expression`) is matched by its field names: Go writes every field,
so the set of keys picks the vmodl subclass (the one with the fewest fields that has
them all). Zero values (`""`, `0`, `"0001-01-01T00:00:00Z"`) read back as unset where
the property is optional, which `to_go_json` writes back identically.
"""

from __future__ import annotations

import base64
from datetime import datetime
from functools import cache
from typing import Any

from pyVmomi import VmomiSupport

from schemas.vmodl_json import GO_ZERO_TIME, go_field_name

_VIM_NS = "urn:vim25"


class GoJsonError(ValueError):
    """JSON that does not describe the vmodl type it should; the message says where."""


def event_from_go_json(class_name: str, data: dict[str, Any]) -> Any:
    """The pyVmomi event of class `class_name` (e.g. "VmPoweredOnEvent") that `data` shows."""
    try:
        cls = VmomiSupport.GetWsdlType(_VIM_NS, class_name)
    except KeyError:
        raise GoJsonError(f"no vSphere event class {class_name!r}") from None
    return from_go_json(data, cls)


def from_go_json(data: Any, cls: type, path: str = "$", *, zero_is_unset: bool = True) -> Any:
    """`data` (Go JSON) read as vmodl type `cls`.

    A property's zero value (`""`, Go's zero time) means "unset"; an array item's does not.
    """
    if data is None:
        return None
    if issubclass(cls, list):
        return _array(data, cls, path)
    if cls is bool:
        return _expect(data, bool, path)
    if issubclass(cls, int):
        return cls(_expect(data, int, path))
    if issubclass(cls, float):
        return cls(_expect(data, int | float, path))
    if issubclass(cls, datetime):
        text = _expect(data, str, path)
        if text == GO_ZERO_TIME and zero_is_unset:
            return None
        try:
            return datetime.fromisoformat(_six_digit_fraction(text))
        except ValueError:
            raise GoJsonError(f"{path}: {text!r} is not an RFC 3339 time") from None
    if issubclass(cls, bytes):
        return cls(base64.b64decode(_expect(data, str, path)))
    if cls is type:
        name = _expect(data, str, path)
        return _vim_type(name, path) if name else None
    if cls is VmomiSupport.ManagedMethod:
        name = _expect(data, str, path)
        return VmomiSupport.UnknownManagedMethod(name) if name else None
    if issubclass(cls, str):
        text = _expect(data, str, path)
        return cls(text) if text or not zero_is_unset else None
    if issubclass(cls, VmomiSupport.ManagedObject):
        return _moref(data, path)
    if issubclass(cls, VmomiSupport.DataObject):
        return _data_object(_expect(data, dict, path), cls, path)
    return _any(data, path)


def _data_object(data: dict[str, Any], declared: type, path: str) -> Any:
    cls = _concrete_type(declared, frozenset(data), path)
    obj = cls()
    for prop in _properties(cls).values():
        name = go_field_name(prop.name)
        if name in data:
            value = from_go_json(data[name], prop.type, f"{path}.{name}")
            if value is not None:
                setattr(obj, prop.name, value)
    return obj


@cache
def _properties(cls: type) -> dict[str, Any]:
    """Go field name → vmodl property, for every property Go writes."""
    return {
        go_field_name(p.name): p
        for p in cls._GetPropertyList()  # type: ignore[attr-defined]
        if p.name not in ("dynamicType", "dynamicProperty")
    }


def _concrete_type(declared: type, keys: frozenset[str], path: str) -> type:
    if keys <= _properties(declared).keys():
        return declared
    fitting = [c for c in _subtypes(declared) if keys <= _properties(c).keys()]
    if not fitting:
        unknown = sorted(keys - _properties(declared).keys())
        raise GoJsonError(f"{path}: {declared.__name__} has no field {', '.join(unknown)}")
    return min(fitting, key=lambda c: len(_properties(c)))


@cache
def _subtypes(declared: type) -> tuple[type, ...]:
    found = []
    for name in VmomiSupport.ListDataTypes():
        cls = VmomiSupport.GetVmodlType(name)
        if cls is not declared and isinstance(cls, type) and issubclass(cls, declared):
            found.append(cls)
    return tuple(found)


def _array(data: Any, cls: type, path: str) -> Any:
    item = cls.Item  # type: ignore[attr-defined]
    if item is VmomiSupport.byte and isinstance(data, str):
        raw = base64.b64decode(data)
        return cls([b - 256 if b > 127 else b for b in raw])
    items = _expect(data, list, path)
    return cls(
        [from_go_json(x, item, f"{path}[{i}]", zero_is_unset=False) for i, x in enumerate(items)]
    )


def _moref(data: Any, path: str) -> Any:
    ref = _expect(data, dict, path)
    if set(ref) != {"Type", "Value"}:
        raise GoJsonError(f"{path}: a MoRef is {{Type, Value}}, not {sorted(ref)}")
    return _vim_type(ref["Type"], path)(ref["Value"])


def _any(data: Any, path: str) -> Any:
    """An anyType value: primitives as they are, {Type, Value} as a MoRef."""
    if isinstance(data, dict):
        if set(data) == {"Type", "Value"}:
            return _moref(data, path)
        raise GoJsonError(f"{path}: cannot tell which vmodl type {sorted(data)} is")
    return data


def _vim_type(name: str, path: str) -> Any:
    try:
        return VmomiSupport.GetWsdlType(_VIM_NS, name)
    except KeyError:
        raise GoJsonError(f"{path}: no vSphere type {name!r}") from None


def _expect(value: Any, kind: Any, path: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise GoJsonError(f"{path}: expected {kind}, got {type(value).__name__} {value!r}")
    return value


def _six_digit_fraction(text: str) -> str:
    """Python reads at most microseconds; Go writes up to nanoseconds."""
    text = text.replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if not dot:
        return text
    digits = len(rest) - len(rest.lstrip("0123456789"))
    return f"{head}.{rest[:digits][:6].ljust(6, '0')}{rest[digits:]}"
