"""A record's event as the worker reads it: attributes from the `ce_*` headers, data
parsed once and only when something reads a field, the cloudevents SDK's event built
only for a processor or an enrichment that changes it.

Most events are routed on their type alone and leave the worker as the bytes they came
as; building an SDK event (a JSON parse, attribute validation) and encoding it again
for each of them was most of the worker's own time. `Reading` answers the questions a
`Selector`, a route and the enrichment ask (`get_type`, `get_subject`, `get_data`, ...)
with the SDK event's method names, so either can be tested alike; tests hold its
answers to the SDK's reading of the same record (tests/streams/test_reading.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from schemas.cloudevent import CloudEventView
from schemas.record import KafkaRecord

_UNREAD: Any = object()


class Reading:
    __slots__ = ("_data", "_event", "record", "view")

    def __init__(self, record: KafkaRecord) -> None:
        self.record = record
        self.view = CloudEventView(record)
        self._data: Any = _UNREAD
        self._event: CloudEvent | None = None

    def get_id(self) -> str:
        return self.view.id

    def get_type(self) -> str:
        return self.view.type

    def get_source(self) -> str:
        return self.view.get("source") or ""

    def get_subject(self) -> str | None:
        return self.view.get("subject")

    def get_extension(self, name: str) -> str | None:
        return self.view.get(name)

    def get_data(self) -> Any:
        """The data, parsed on first use (InvalidRecord if it is not JSON)."""
        if self._data is _UNREAD:
            self._data = self.view.data()
        return self._data

    def event(self) -> CloudEvent:
        """The SDK's event for this record, for a processor or an enrichment (built once,
        from the data already parsed; InvalidRecord if the data is not JSON)."""
        if self._event is None:
            self._event = RecordEvent(self.view, self.get_data())
        return self._event


class RecordEvent(CloudEvent):
    """The SDK's CloudEvent of a record `CloudEventView.check` accepted, read from it.

    `CloudEvent(attributes, data)` validates the attributes again, which the check has
    just done with the SDK's own rules (tests/schemas/test_cloudevent_view.py), and a
    processor's input event was a sixth of the example processor's cost. This is a
    CloudEvent (for `isinstance`, `with_changes`, the SDK's bindings) whose public
    getters answer from the view; `get_attributes` builds the SDK's dict (time parsed)
    on first use, and the getters keep answering from the record: changing that dict does
    not change the event, as it would the SDK's (make a changed event with `with_changes`,
    as processors do). `CloudEvent.__init__` is not called: every public method of the SDK's
    class is overridden here, so none reads the attributes it would have stored
    (guard: tests/streams/test_reading.py, which also fails if the SDK adds a method).
    """

    def __init__(self, view: CloudEventView, data: Any) -> None:
        self._view = view
        self._value = data
        self._built: dict[str, Any] | None = None

    def get_id(self) -> str:
        return self._view.id

    def get_source(self) -> str:
        return self._view.attributes["source"]

    def get_type(self) -> str:
        return self._view.type

    def get_specversion(self) -> str:
        return self._view.attributes["specversion"]

    def get_datacontenttype(self) -> str | None:
        return self._view.get("datacontenttype")

    def get_dataschema(self) -> str | None:
        return self._view.get("dataschema")

    def get_subject(self) -> str | None:
        return self._view.get("subject")

    def get_time(self) -> datetime | None:
        return self._view.time()

    def get_extension(self, extension_name: str) -> Any:
        if extension_name == "time":
            return self._view.time()
        return self._view.get(extension_name)

    def get_data(self) -> Any:
        return self._value

    def get_attributes(self) -> dict[str, Any]:
        if self._built is None:
            built: dict[str, Any] = dict(self._view.attributes)
            built["time"] = self._view.time()
            self._built = built
        return self._built


def sdk_event(event: CloudEvent | Reading) -> CloudEvent:
    return event.event() if isinstance(event, Reading) else event


def record_of(source: Any, topic: str) -> KafkaRecord:
    """The record of a Faust event (its message), as every vcstream stage sees one."""
    message = source.message
    headers = message.headers or []
    if isinstance(headers, dict):
        headers = list(headers.items())
    return KafkaRecord(
        value=source.value,
        key=source.key,
        headers=[(name, value if value is not None else b"") for name, value in headers],
        topic=topic,
        partition=message.partition,
        offset=message.offset,
        timestamp_ms=int(message.timestamp * 1000) if message.timestamp else None,
    )
