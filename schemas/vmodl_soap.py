"""A ReadNextEvents SOAP response straight to VEBA/Go JSON, without pyVmomi's objects.

pyVmomi's deserialiser builds a typed object per XML element (its `DataObject.__init__`
and `__setattr__` check every value), and `to_go_json` then walks those objects again:
together most of the producer's CPU per event. This reads the same XML with expat,
guided by pyVmomi's own type tables (`VmomiSupport`), into the dicts `to_go_json` would
write. It follows `pyVmomi.SoapAdapter.SoapDeserializer` rule for rule (which type an
element has, `xsi:type`, the stub version's compatible types, how text becomes a
value) and converts every value with `to_go_json`'s own per-field converters, so the
JSON is the same. tests/schemas/test_vmodl_soap.py holds it equal to
`to_go_json(pyVmomi's deserialisation)` for generated events of every event class.

Whatever it is not sure of (a fault, LocalizedMethodFault, an array held by an
anyType, a type or enum value pyVmomi would have to guess, a value pyVmomi's setattr
might refuse, XML that does not parse) makes it decline the whole page: `read_events`
returns None and the caller hands the same bytes to pyVmomi, which reads them or raises
as it always did.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any
from xml.parsers import expat

from pyVmomi import Iso8601, VmomiSupport

from schemas.vmodl_json import Converter, GoEvent, fields_of

_NS_SEP = " "
_XSI_TYPE = "http://www.w3.org/2001/XMLSchema-instance type"
_SOAP_FAULT = "http://schemas.xmlsoap.org/soap/envelope/ Fault"
_EVENT: Any = VmomiSupport.GetVmodlType("vim.event.Event")
_DataObject: Any = VmomiSupport.DataObject
_ManagedObject: Any = VmomiSupport.ManagedObject
_ManagedMethod: Any = VmomiSupport.ManagedMethod
_Enum: Any = VmomiSupport.Enum
_LocalizedMethodFault: Any = VmomiSupport.GetVmodlType("vmodl.LocalizedMethodFault")
_PropertyPath: Any = VmomiSupport.PropertyPath
_binary: Any = VmomiSupport.binary


class Declined(Exception):
    """The page holds something this reader does not follow; pyVmomi reads it instead."""


# what an element's type makes of it (`_plan`)
_OBJECT, _LEAF, _MOREF = 0, 1, 2
# (kind, payload, the element's class): payload is the class (_OBJECT), the text's
# reader (_LEAF) or None (_MOREF, whose class is its `type` attribute's)
Plan = tuple[int, Any, Any]


@dataclass(frozen=True, slots=True)
class _Prop:
    name: str  # the vmodl (wire) name
    go_name: str
    type: Any
    array: bool
    item: Any  # the item type of an array, else the type itself
    structured: bool  # data object or MoRef (or an array of them): read as Go dicts
    convert: Converter  # to_go_json's converter for this field
    dynamic: bool  # xsi:type is ignored (pyVmomi's isDynamicType)
    plan: Plan | None  # without xsi:type; None: declined
    # pyVmomi's setattr checks a single value's type (CheckField) and refuses None for a
    # required property; array items are appended unchecked
    checked: bool
    optional: bool


@dataclass(frozen=True, slots=True)
class _Table:
    props: dict[str, _Prop]
    unset: dict[str, Any]  # Go name → the value Go writes when vCenter sent nothing


@cache
def _table(cls: Any, version: str | None) -> _Table:
    by_attr = {attr: (go_name, convert) for go_name, attr, convert in fields_of(cls)}
    props: dict[str, _Prop] = {}
    for info in cls._GetPropertyList():
        ptype = info.type
        array = issubclass(ptype, list)
        item = ptype.Item if array else ptype
        found = by_attr.get(info.name)
        if found is None:  # dynamicType/dynamicProperty: Go has no field, nor does pyVmomi
            continue  # send them; an element of that name makes the page decline
        go_name, convert = found
        structured = isinstance(item, type) and issubclass(item, _DataObject | _ManagedObject)
        dynamic = ptype is _ManagedMethod or ptype is _PropertyPath or ptype is type
        props[info.name] = _Prop(
            info.name, go_name, ptype, array, item, structured, convert, dynamic,
            _plan(item, version), not array and ptype is not object,
            bool(info.flags & VmomiSupport.F_OPTIONAL),
        )  # fmt: skip
    unset = {go_name: convert(None) for go_name, _, convert in fields_of(cls)}
    return _Table(props, unset)


@cache
def _plan(declared: Any, version: str | None) -> Plan | None:
    """How SoapDeserializer.StartElementHandler reads an element of type `declared`
    (after xsi:type and array items are resolved); None where this reader declines."""
    if issubclass(declared, list):
        return None  # an array where a single value belongs (wrapped arrays, anyType)
    if version:
        declared = VmomiSupport.GetCompatibleType(declared, version)
    if issubclass(declared, _ManagedObject):
        return (_MOREF, None, None)
    if issubclass(declared, _DataObject):
        if issubclass(declared, Exception | _LocalizedMethodFault):
            return None  # pyVmomi unwraps faults
        return (_OBJECT, declared, declared)
    leaf = _leaf_reader(declared)
    return None if leaf is None else (_LEAF, leaf, declared)


@cache
def _element_type(ns: str, name: str) -> Any:
    """pyVmomi's LookupWsdlType(ns, name, allowManagedObjectReference=True), or None."""
    if name.endswith("ManagedObjectReference"):
        return _ManagedObject
    try:
        return VmomiSupport.GetWsdlType(ns, name)
    except KeyError:
        return None  # pyVmomi would guess: declined


@cache
def _moref_type(ns: str, name: str) -> Any:
    try:
        return VmomiSupport.GetWsdlType(ns, name)
    except KeyError:
        return None


@cache
def _local_name(tag: str) -> str:
    return tag.rpartition(_NS_SEP)[2]


class _Reader:
    def __init__(self, version: str | None) -> None:
        self.version = version
        self.ns: dict[str | None, list[str]] = {}
        # frames: [kind, payload, prop (None for an event), values (objects)]
        self.stack: list[list[Any]] = []
        self.in_result = False
        self.text = ""
        self.events: list[GoEvent] = []
        self.event_table = _table(_EVENT, version)

    # -- namespaces, as ExpatDeserializerNSHandlers keeps them

    def start_ns(self, prefix: str | None, uri: str) -> None:
        self.ns.setdefault(prefix, []).append(uri)

    def end_ns(self, prefix: str | None) -> None:
        self.ns[prefix].pop()

    def qualified(self, text: str) -> tuple[str, str]:
        prefix, colon, name = text.partition(":")
        if not colon:
            prefix, name = None, text  # type: ignore[assignment]
        namespaces = self.ns.get(prefix)
        return (namespaces[-1] if namespaces else ""), name

    # -- elements

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        self.text = ""
        stack = self.stack
        if stack:
            parent = stack[-1]
            if parent[0] is not _OBJECT:
                raise Declined(f"an element inside a value: {tag!r}")
            prop = parent[1].props.get(_local_name(tag))
            if prop is None:
                raise Declined(f"{parent[2]} has no property {tag!r}")
            plan = prop.plan
            if attrs and not prop.dynamic and _XSI_TYPE in attrs:
                plan = self._dynamic(attrs[_XSI_TYPE])
        elif self.in_result:
            prop = None
            xsi_type = attrs.get(_XSI_TYPE) if attrs else None
            plan = self._dynamic(xsi_type) if xsi_type else _plan(_EVENT, self.version)
        else:
            if tag == _SOAP_FAULT:
                raise Declined("a SOAP fault")
            if tag.endswith("Response"):
                self.in_result = True
            return
        if plan is None:
            raise Declined(f"{tag!r}: a type this reader does not follow")
        kind, payload, cls = plan
        if kind is _MOREF:
            type_attr = attrs.get("type") if attrs else None
            if type_attr is None:
                raise Declined("a MoRef without a type")
            cls = _moref_type(*self.qualified(type_attr))
            if cls is None:
                raise Declined(f"a MoRef of unknown type {type_attr!r}")
        if prop is not None and prop.checked and not issubclass(cls, prop.type):
            # e.g. a type newer than the stub's version, narrowed to a base: pyVmomi's
            # setattr refuses it (and where its CheckField would let it pass, pyVmomi reads)
            raise Declined(f"{tag!r}: a {cls.__name__} where a {prop.type.__name__} belongs")
        if kind is _OBJECT:
            stack.append([_OBJECT, _table(payload, self.version), payload, prop, {}])
        elif kind is _LEAF:
            stack.append([_LEAF, payload, None, prop, None])
        else:
            stack.append([_MOREF, cls._wsdlName, None, prop, None])

    def _dynamic(self, xsi_type: str) -> Plan | None:
        dynamic = _element_type(*self.qualified(xsi_type))
        return None if dynamic is None else _plan(dynamic, self.version)

    def chars(self, data: str) -> None:
        self.text += data

    def end(self, tag: str) -> None:
        stack = self.stack
        if not stack:
            if self.in_result and tag.endswith("Response"):
                self.in_result = False
            return
        kind, payload, cls, prop, values = stack.pop()
        value: Any
        if kind is _LEAF:
            value = payload(self.text, self)
        elif kind is _OBJECT:
            value = _finish(payload, values)
        else:
            value = {"Type": payload, "Value": self.text}
        self.text = ""
        if prop is None:
            if kind is not _OBJECT:
                raise Declined("an event that is not a data object")
            key = values.get("key")
            created = values.get("createdTime")
            if not isinstance(key, int) or not isinstance(created, datetime):
                raise Declined("an event without key or createdTime")
            self.events.append(GoEvent(cls._wsdlName, value, int(key), created))
            return
        parent_values = stack[-1][4]
        if prop.array and not isinstance(value, list):
            if value is None:
                raise Declined(f"an empty item in {prop.name}")
            items = parent_values.get(prop.name)
            if items is None:
                parent_values[prop.name] = [value]
            else:
                items.append(value)
        else:
            if value is None and not prop.optional and prop.checked:
                raise Declined(f"{prop.name} is required: pyVmomi refuses None")
            parent_values[prop.name] = value


def _finish(table: _Table, values: dict[str, Any]) -> dict[str, Any]:
    out = table.unset.copy()
    props = table.props
    for name, value in values.items():
        prop = props[name]
        if value is None:
            continue  # pyVmomi sets None: unset
        if not prop.array:
            out[prop.go_name] = value if isinstance(value, dict) else prop.convert(value)
        elif prop.structured:
            if not all(isinstance(x, dict) for x in value):
                raise Declined(f"{name}: a value where a data object belongs")
            out[prop.go_name] = value
        elif prop.item is object:
            out[prop.go_name] = [x if isinstance(x, dict) else prop.convert([x])[0] for x in value]
        else:
            if any(isinstance(x, dict) for x in value):
                raise Declined(f"{name}: a data object where a value belongs")
            out[prop.go_name] = prop.convert(value)
    return out


LeafReader = Callable[[str, _Reader], Any]
# RFC 3339 in UTC as vCenter writes times; anything else goes to pyVmomi's own parser
_UTC_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z\Z")


def _time(data: str, reader: _Reader) -> datetime:
    return parse_time(data)


def parse_time(data: str) -> datetime:
    """Iso8601.ParseISO8601 (fraction cut to 6 digits), at C speed for the usual form;
    raises Declined for what it does not read."""
    match = _UTC_TIME.match(data)
    if match:
        head, fraction = match.groups()
        try:
            return datetime.fromisoformat(f"{head}.{(fraction or '')[:6]:0<6}+00:00")
        except ValueError:
            pass  # e.g. hour 24, which pyVmomi reads as the next day
    parsed = Iso8601.ParseISO8601(data)
    if not parsed:
        raise Declined(f"{data!r} is not a time")
    return parsed  # type: ignore[no-any-return]


def _type_value(data: str, reader: _Reader) -> Any:
    if not data:
        return None
    try:
        return VmomiSupport.GetWsdlType(*reader.qualified(data))
    except KeyError:
        raise Declined(f"unknown type {data!r} (pyVmomi would guess)") from None


def _method(data: str, reader: _Reader) -> Any:
    ns, name = reader.qualified(data)
    try:
        return VmomiSupport.GetWsdlMethod(ns, name)
    except KeyError:
        try:
            return VmomiSupport.GuessWsdlMethod(name)
        except KeyError:
            return VmomiSupport.UnknownManagedMethod(name)


def _bool(data: str, reader: _Reader) -> bool:
    if data == "0" or data.lower() == "false":
        return False
    if data == "1" or data.lower() == "true":
        return True
    raise Declined(f"{data!r} is not a boolean")


def _base64(data: str, reader: _Reader) -> Any:
    try:
        return _binary(base64.b64decode(data))
    except ValueError:
        raise Declined("invalid base64") from None


def _text(data: str, reader: _Reader) -> str:
    return data


@cache
def _leaf_reader(cls: Any) -> LeafReader | None:
    """What pyVmomi's EndElementHandler makes of an element's text as `cls`."""
    if cls is type:
        return _type_value
    if cls is _ManagedMethod:
        return _method
    if cls is bool:
        return _bool
    if cls is _binary:
        return _base64
    if cls is str:
        return _text
    if cls is datetime:
        return _time
    if cls is object:
        return None  # an anyType value without xsi:type: pyVmomi cannot make one
    if issubclass(cls, _Enum):

        def enum_value(data: str, reader: _Reader) -> Any:
            try:
                return getattr(cls, data)
            except AttributeError:
                raise Declined(f"{data!r} is no {cls.__name__}") from None

        return enum_value

    def constructed(data: str, reader: _Reader) -> Any:
        try:
            return cls(data)
        except (TypeError, ValueError):
            raise Declined(f"{data!r} is no {cls.__name__}") from None

    return constructed


def read_events(xml: bytes, version: str | None) -> list[GoEvent] | None:
    """The events of a ReadNextEvents response as Go JSON, or None to let pyVmomi read it.

    `version`: the stub's vmodl version (`stub.version`), which pyVmomi narrows each
    type to, as here.
    """
    reader = _Reader(version)
    parser = expat.ParserCreate(namespace_separator=_NS_SEP)
    parser.buffer_text = True
    parser.StartNamespaceDeclHandler = reader.start_ns
    parser.EndNamespaceDeclHandler = reader.end_ns
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    parser.CharacterDataHandler = reader.chars
    try:
        parser.Parse(xml, True)
    except (Declined, expat.ExpatError):  # not XML: pyVmomi's error, as before
        return None
    return reader.events
