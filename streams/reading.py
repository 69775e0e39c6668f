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

from typing import Any

from cloudevents.core.v1.event import CloudEvent

from schemas.cloudevent import CloudEventView
from schemas.codec import from_attributes
from schemas.record import KafkaRecord

_UNREAD: Any = object()


class Reading:
    __slots__ = ("_data", "_event", "record", "view")

    def __init__(self, record: KafkaRecord) -> None:
        self.record = record
        self.view = CloudEventView(record)
        self._data: Any = _UNREAD
        self._event: CloudEvent | None = None

    def check(self) -> None:
        """InvalidRecord unless the headers make a CloudEvent `schemas.decode` would
        accept; the data is checked when it is read (`get_data`)."""
        self.view.check(data=False)

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
        from the data already parsed)."""
        if self._event is None:
            self._event = from_attributes(self.view.attributes, self.get_data())
        return self._event


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
