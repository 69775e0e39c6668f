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
anyType, a type or enum value pyVmomi would have to guess) makes it decline the whole
page: `read_events` returns None and the caller hands the same bytes to pyVmomi.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any
from xml.parsers import expat

from pyVmomi import Iso8601, VmomiSupport

from schemas.vmodl_json import Converter, GoEvent, fields_of

_NS_SEP = " "
_XSI_TYPE = "http://www.w3.org/2001/XMLSchema-instance type"
_SOAP_FAULT = "http://schemas.xmlsoap.org/soap/envelope/ Fault"
_VMODL_NS = VmomiSupport.XMLNS_VMODL_BASE
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


@dataclass(frozen=True, slots=True)
class _Prop:
    name: str  # the vmodl (wire) name
    go_name: str
    type: Any
    array: bool
    item: Any  # the item type of an array, else the type itself
    structured: bool  # data object or MoRef (or an array of them): read as Go dicts
    convert: Converter  # to_go_json's converter for this field


@dataclass(frozen=True, slots=True)
class _Table:
    props: dict[str, _Prop]
    unset: dict[str, Any]  # Go name → the value Go writes when vCenter sent nothing


@cache
def _table(cls: Any) -> _Table:
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
        props[info.name] = _Prop(info.name, go_name, ptype, array, item, structured, convert)
    unset = {go_name: convert(None) for go_name, _, convert in fields_of(cls)}
    return _Table(props, unset)


@dataclass(slots=True)
class _Object:
    cls: Any
    table: _Table
    values: dict[str, Any] = field(default_factory=dict)  # vmodl name → value(s) read


@dataclass(slots=True)
class _Leaf:
    cls: Any


@dataclass(slots=True)
class _MoRef:
    type_name: str


class _Reader:
    def __init__(self, version: str | None) -> None:
        self.version = version
        self.ns: dict[str | None, list[str]] = {}
        self.stack: list[Any] = []
        self.in_result = False
        self.text: list[str] = []
        self.events: list[GoEvent] = []

    # -- namespaces, as ExpatDeserializerNSHandlers keeps them

    def start_ns(self, prefix: str | None, uri: str) -> None:
        self.ns.setdefault(prefix, []).append(uri)

    def end_ns(self, prefix: str | None) -> None:
        self.ns[prefix].pop()

    def _qualified(self, text: str) -> tuple[str, str]:
        prefix, colon, name = text.partition(":")
        if not colon:
            prefix, name = None, text  # type: ignore[assignment]
        namespaces = self.ns.get(prefix)
        return (namespaces[-1] if namespaces else ""), name

    # -- elements

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        self.text = []
        if not self.in_result:
            if tag == _SOAP_FAULT:
                raise Declined("a SOAP fault")
            if tag.endswith("Response"):
                self.in_result = True
            return
        stack = self.stack
        if not stack:
            declared: Any = _EVENT  # ReadNextEvents returns Event[]: each item an Event
        else:
            parent = stack[-1]
            if not isinstance(parent, _Object):
                raise Declined(f"an element inside a {type(parent).__name__}")
            prop = parent.table.props.get(tag.rpartition(_NS_SEP)[2])
            if prop is None:
                raise Declined(f"{parent.cls.__name__} has no property {tag!r}")
            declared = prop.type
        xsi_type = attrs.get(_XSI_TYPE)
        if xsi_type and not (
            declared is _ManagedMethod or declared is _PropertyPath or declared is type
        ):
            dynamic = self._type(xsi_type)
            if issubclass(dynamic, list):
                raise Declined(f"an array typed {xsi_type!r} in an element")
            declared = dynamic
        elif issubclass(declared, list):
            declared = declared.Item
        if self.version:
            declared = VmomiSupport.GetCompatibleType(declared, self.version)
        if issubclass(declared, _ManagedObject):
            type_attr = attrs.get("type")
            if type_attr is None:
                raise Declined("a MoRef without a type")
            ns, name = self._qualified(type_attr)
            stack.append(_MoRef(self._lookup(ns, name)._wsdlName))
        elif issubclass(declared, _DataObject):
            if issubclass(declared, Exception | _LocalizedMethodFault):
                raise Declined(f"a {declared.__name__}: pyVmomi unwraps faults")
            stack.append(_Object(declared, _table(declared)))
        elif issubclass(declared, list):
            raise Declined(f"an array ({declared.__name__}) as a value")
        else:
            stack.append(_Leaf(declared))

    def _type(self, xsi_type: str) -> Any:
        ns, name = self._qualified(xsi_type)
        if name.endswith("ManagedObjectReference"):
            return _ManagedObject  # pyVmomi's LookupWsdlType(allowManagedObjectReference)
        return self._lookup(ns, name)

    @staticmethod
    def _lookup(ns: str, name: str) -> Any:
        try:
            return VmomiSupport.GetWsdlType(ns, name)
        except KeyError:
            raise Declined(f"unknown type {ns}:{name} (pyVmomi would guess)") from None

    def chars(self, data: str) -> None:
        self.text.append(data)

    def end(self, tag: str) -> None:
        if not self.stack:
            if self.in_result and tag.endswith("Response"):
                self.in_result = False
            return
        frame = self.stack.pop()
        value: Any
        if isinstance(frame, _Object):
            value = self._finish(frame)
        elif isinstance(frame, _MoRef):
            value = {"Type": frame.type_name, "Value": "".join(self.text)}
        else:
            value = self._leaf(frame.cls, "".join(self.text))
        self.text = []
        if not self.stack:
            self._add_event(frame, value)
            return
        parent = self.stack[-1]
        prop = parent.table.props[tag.rpartition(_NS_SEP)[2]]
        if prop.array and not isinstance(value, list):
            if value is None:
                raise Declined(f"an empty item in {prop.name}")
            parent.values.setdefault(prop.name, []).append(value)
        else:
            parent.values[prop.name] = value

    def _add_event(self, frame: Any, data: Any) -> None:
        if not isinstance(frame, _Object):
            raise Declined("an event that is not a data object")
        key = frame.values.get("key")
        created = frame.values.get("createdTime")
        if not isinstance(key, int) or not isinstance(created, datetime):
            raise Declined("an event without key or createdTime")
        self.events.append(GoEvent(frame.cls._wsdlName, data, int(key), created))

    def _finish(self, frame: _Object) -> dict[str, Any]:
        out = dict(frame.table.unset)
        props = frame.table.props
        for name, value in frame.values.items():
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

    def _leaf(self, cls: Any, data: str) -> Any:
        """The value pyVmomi's EndElementHandler makes of `data` as `cls`."""
        if cls is type:
            if not data:
                return None
            ns, name = self._qualified(data)
            return self._lookup(ns, name)
        if cls is _ManagedMethod:
            ns, name = self._qualified(data)
            try:
                return VmomiSupport.GetWsdlMethod(ns, name)
            except KeyError:
                try:
                    return VmomiSupport.GuessWsdlMethod(name)
                except KeyError:
                    return VmomiSupport.UnknownManagedMethod(name)
        if cls is bool:
            if data == "0" or data.lower() == "false":
                return False
            if data == "1" or data.lower() == "true":
                return True
            raise Declined(f"{data!r} is not a boolean")
        if cls is _binary:
            try:
                return cls(base64.b64decode(data))
            except ValueError:
                raise Declined("invalid base64") from None
        if cls is str:
            return data
        if cls is datetime:
            parsed = Iso8601.ParseISO8601(data)
            if not parsed:
                raise Declined(f"{data!r} is not a time")
            return parsed
        if cls is object:
            raise Declined("an anyType value without xsi:type")
        if issubclass(cls, _Enum):
            try:
                return getattr(cls, data)
            except AttributeError:
                raise Declined(f"{data!r} is no {cls.__name__}") from None
        try:
            return cls(data)
        except (TypeError, ValueError):
            raise Declined(f"{data!r} is no {cls.__name__}") from None


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
