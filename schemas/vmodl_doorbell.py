"""A WaitForUpdatesEx response on the events' `latestPage` (the producer's doorbell),
read without pyVmomi's objects: only its version and the newest events' keys and times,
what the producer's worker looks at. What this does not follow raises `Declined`, and
the caller reads the same bytes with pyVmomi instead (as `schemas.vmodl_soap` does for
a page of events)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from xml.parsers import expat

from schemas.vmodl_soap import Declined, parse_time


@dataclass(frozen=True, slots=True)
class LatestEvent:
    """An event of the collector's `latestPage` as far as the worker looks at it
    (`producer.position.position_of`)."""

    key: int
    createdTime: datetime  # pyVmomi's attribute name, read alike


@dataclass(frozen=True, slots=True)
class DoorbellUpdate:
    version: str
    latest_page: list[LatestEvent]  # the last non-empty `latestPage` change, oldest first


_XSI_TYPE = "http://www.w3.org/2001/XMLSchema-instance type"
_RESPONSE = ("Envelope", "Body", "WaitForUpdatesExResponse")
_RETURNVAL = (*_RESPONSE, "returnval")
_CHANGE = (*_RETURNVAL, "filterSet", "objectSet", "changeSet")
_VAL = (*_CHANGE, "val")
_EVENT_FIELDS = {"key", "createdTime"}


def read_doorbell(body: bytes) -> DoorbellUpdate | None:
    """A WaitForUpdatesEx response's version and last non-empty `latestPage` change
    (None: the wait ended without an update); raises Declined for anything else."""
    stack: list[str] = []
    text: list[str] = []
    found: dict[str, Any] = {"response": False, "returnval": False, "version": None}
    page: list[LatestEvent] = []
    change: dict[str, Any] = {}
    event: dict[str, str] = {}

    def start(name: str, attrs: dict[str, str]) -> None:
        stack.append(name.rpartition(" ")[2])
        path = tuple(stack)
        text.clear()
        if path == _RESPONSE:
            found["response"] = True
        elif path == _RETURNVAL:
            found["returnval"] = True
        elif path == _CHANGE:
            change.clear()
            change["events"] = []
        elif path == _VAL:
            if attrs.get(_XSI_TYPE, "").rpartition(":")[2] != "ArrayOfEvent":
                raise Declined(f"a change's value of type {attrs.get(_XSI_TYPE)!r}")
            change["val"] = True
        elif path[:-1] == _VAL:
            event.clear()

    def end(name: str) -> None:
        path = tuple(stack)
        local = stack.pop()
        if path == (*_RETURNVAL, "version"):
            found["version"] = "".join(text)
        elif path == (*_CHANGE, "name"):
            change["name"] = "".join(text)
        elif len(path) == len(_VAL) + 2 and path[: len(_VAL)] == _VAL and local in _EVENT_FIELDS:
            event[local] = "".join(text)
        elif path[:-1] == _VAL:
            change["events"].append(_latest_event(event))
        elif path == _CHANGE and change.get("name") == "latestPage" and change["events"]:
            page[:] = change["events"]
        text.clear()

    parser = expat.ParserCreate(namespace_separator=" ")
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text.append
    try:
        parser.Parse(body, True)
    except expat.ExpatError as exc:
        raise Declined(str(exc)) from None
    if not found["response"]:
        raise Declined("no WaitForUpdatesExResponse")
    if not found["returnval"]:
        return None
    if found["version"] is None:
        raise Declined("an update without a version")
    return DoorbellUpdate(found["version"], page)


def _latest_event(fields: dict[str, str]) -> LatestEvent:
    key, created = fields.get("key"), fields.get("createdTime")
    if key is None or created is None:
        raise Declined(f"an event without key or createdTime: {sorted(fields)}")
    try:
        number = int(key)
    except ValueError:
        raise Declined(f"an event key that is no integer: {key!r}") from None
    try:
        return LatestEvent(number, parse_time(created))
    except Declined as exc:
        raise Declined(f"an event's createdTime: {exc}") from None
