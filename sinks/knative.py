"""CloudEvents over HTTP to a Knative Broker (or any CloudEvents receiver).

Each event is one POST carrying the record as Kafka holds it: in binary mode (the
default) its value is the body, byte for byte, and its `ce_*` headers are the `ce-`
headers (`schemas.cloudevent.CloudEventView.http_binary`); in structured mode the data
is inserted into the JSON envelope without being re-encoded. Nothing is decoded into an
SDK object on the way (the runtime only checks each record: `Sink.decodes`).

Requests go over a pool of up to `concurrency` keep-alive connections
(`sinks.http_client`, which says why not aiohttp), each key's events in order, from
as many workers shared by every partition's batches (`sinks.base.KeyPool`). 2xx is delivered;
404, 408, 409, 429 and 5xx are retried (honouring `Retry-After`); any other status is
dead-lettered at once.

A binary-mode request is built once per header layout (`LayoutCheck`: records whose
headers differ only in `ce_id` and `ce_time`), as `RequestTemplate`: per record only the
id and the time are percent-encoded and put between the layout's bytes, the same bytes
`request_for` gives the record (tests/sinks/test_knative_layouts.py holds every layout
variant to that). Building each request's header dict and lines was ~10% of the sink's
event loop (py-spy --native, bench.knative). Structured mode, and `typeFormat: event-router`
for events whose subject comes from their data, build each request from its record.

`typeFormat: event-router` serves Triggers written for VEBA up to v0.7: `type` becomes
`com.vmware.event.router/event` (`/eventex`, `/extendedevent`) and `subject` the event
class (for EventEx/ExtendedEvent, its eventTypeId), as VEBA's event router sent them.
Horizon events become `com.vmware.event.router/horizon.<type in lower case>.v0`, as that
router's Horizon provider named them (no subject).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import ClassVar

from schemas.cloudevent import MAX_LAYOUTS, CloudEventView, percent_encode
from schemas.horizon import TYPE_PREFIX as HORIZON_TYPE_PREFIX
from sinks.base import DeliveryError, KeyPool, Outcome, Sink, SinkEvent
from sinks.http_client import HTTPClient, InvalidHeader
from vcstream.proxy import proxy_for
from vcstream.settings.sinks import KnativeSinkSettings

EVENT_ROUTER_TYPE = "com.vmware.event.router/"
MAX_ERROR_BODY = 1024


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _router_reads_data(view: CloudEventView) -> bool:
    """Whether `event_router_changes` reads the event's data (EventEx, ExtendedEvent)."""
    current = view.get("type") or ""
    kind = view.get("eventclass") or "event"
    return not current.startswith(HORIZON_TYPE_PREFIX) and kind != "event"


def event_router_changes(view: CloudEventView) -> dict[str, str]:
    """The attributes VEBA's v0.7 event router would have set (`com.vmware.event.router/…`).

    Data is parsed only for EventEx and ExtendedEvent, whose subject is their eventTypeId."""
    current = view.get("type") or ""
    if current.startswith(HORIZON_TYPE_PREFIX):
        # com.vmware.horizon.<type>.v0 → com.vmware.event.router/horizon.<type>.v0
        return {"type": EVENT_ROUTER_TYPE + "horizon." + current[len(HORIZON_TYPE_PREFIX) :]}
    kind = view.get("eventclass") or "event"
    changes = {"type": EVENT_ROUTER_TYPE + kind}
    if _router_reads_data(view):
        data = view.data()
        if isinstance(data, dict) and data.get("EventTypeId"):
            changes["subject"] = str(data["EventTypeId"])
    return changes


# the HTTP headers of the attributes a header layout leaves to each record (`HeaderLayouts`)
_SLOTS = {"ce-id": "id", "ce-time": "time"}


class RequestTemplate:
    """A binary-mode request of one header layout, but for its id and time: the bytes
    around them, built once. `request` gives the bytes `HTTPClient.head` gives the
    layout's records' headers and body (the same lines in the same order)."""

    __slots__ = ("first", "parts", "second")

    def __init__(self, parts: list[bytes], order: tuple[str, str]) -> None:
        self.parts = parts  # before the first slot, between the two, after the second
        self.first, self.second = order  # "id" and "time", as the headers order them

    @classmethod
    def build(cls, start: str, headers: dict[str, str]) -> RequestTemplate:
        """From one record's headers (`request_for`, checked by `HTTPClient.lines`)."""
        pieces, order, current = [], [], start
        for name, value in headers.items():
            if name in _SLOTS:
                pieces.append(current + name + ": ")
                order.append(_SLOTS[name])
                current = "\r\n"
            else:
                current += f"{name}: {value}\r\n"
        pieces.append(current + "Content-Length: ")
        first, second = order  # a layout's records all have both (`HeaderLayouts.learn`)
        return cls([piece.encode() for piece in pieces], (first, second))

    def request(self, view: CloudEventView) -> bytes:
        """The request for a record of this layout: only its id, time and body are its own.

        Percent-encoded, the id and time are printable ASCII: they cannot split a line."""
        attributes = view.attributes
        body = view.record.value or b""
        before, between, after = self.parts
        return b"".join(
            (
                before,
                percent_encode(attributes[self.first]).encode(),
                between,
                percent_encode(attributes[self.second]).encode(),
                after,
                b"%d\r\n\r\n" % len(body),
                body,
            )
        )


class KnativeSink(Sink):
    kind: ClassVar[str] = "knative"
    decodes: ClassVar[bool] = False
    settings: KnativeSinkSettings

    def __init__(self, settings: KnativeSinkSettings, name: str | None = None) -> None:
        super().__init__(settings, name)
        self._client: HTTPClient | None = None
        self._pool = KeyPool(settings.concurrency)
        self._headers: dict[str, str] = {}
        self._event_router = settings.type_format == "event-router"
        self._structured = settings.content_mode == "structured"
        if settings.auth is not None:
            self._headers[settings.auth.name] = settings.auth.value.get_secret_value()
        # id(layout) → the layout (kept, so its id is not reused) and its template (None:
        # its records' requests are built one by one); forgotten all at once when full,
        # as `HeaderLayouts` forgets layouts
        self._templates: dict[int, tuple[object, RequestTemplate | None]] = {}
        # structured bodies are built per record; an auth header named as a slot's would
        # replace the record's own id or time
        self._templated = not self._structured and not _SLOTS.keys() & self._headers.keys()

    @property
    def dest(self) -> str:
        return self.settings.url

    async def start(self) -> None:
        self._client = HTTPClient(
            self.settings.url,
            connections=self.settings.concurrency,
            timeout=self.settings.delivery.timeout.total_seconds(),
            proxy=proxy_for(self.settings.url, self.settings.proxy),
        )

    async def close(self) -> None:
        await self._pool.close()
        if self._client is not None:
            await self._client.close()
            self._client = None

    def request_for(self, view: CloudEventView) -> tuple[dict[str, str], bytes]:
        """Headers and body of an event's POST, per `typeFormat` and `contentMode`."""
        changes = event_router_changes(view) if self._event_router else None
        if self._structured:
            headers, body = view.http_structured(changes)
        else:
            headers, body = view.http_binary(changes)
        if self._headers:
            headers.update(self._headers)
        return headers, body

    async def deliver(self, batch: Sequence[SinkEvent]) -> Sequence[Outcome]:
        return await self._pool.deliver(batch, self._post)

    def template_for(self, item: SinkEvent) -> RequestTemplate | None:
        """The request template of `item`'s layout, built from `item` if it is the first
        of it (InvalidHeader: its headers cannot be sent); None: build it per record."""
        layout = item.layout
        if layout is None or self._client is None:
            return None
        known = self._templates.get(id(layout))
        if known is not None and known[0] is layout:
            return known[1]
        template = None
        view = item.view
        if self._templated and not (self._event_router and _router_reads_data(view)):
            headers, _ = self.request_for(view)
            self._client.lines(headers)  # InvalidHeader: no record of the layout can go
            template = RequestTemplate.build(self._client.start, headers)
        if len(self._templates) >= MAX_LAYOUTS:
            self._templates.clear()
        self._templates[id(layout)] = (layout, template)
        return template

    def request_bytes(self, item: SinkEvent) -> bytes:
        """The whole request for `item`, as `HTTPClient.send` sends it."""
        if self._client is None:
            raise RuntimeError("KnativeSink.start() was not called")
        template = self.template_for(item)
        if template is not None:
            return template.request(item.view)
        headers, body = self.request_for(item.view)
        return self._client.head(headers, len(body)) + body

    async def _post(self, item: SinkEvent) -> None:
        if self._client is None:
            raise RuntimeError("KnativeSink.start() was not called")
        try:
            request = self.request_bytes(item)
        except InvalidHeader as exc:  # the record would split the request: no retry helps
            raise DeliveryError(str(exc), retryable=False, dest=self.settings.url) from None
        answer = await self._client.send(request)
        if 200 <= answer.status < 300:
            return
        raise DeliveryError.from_status(
            answer.status,
            dest=self.settings.url,
            response=answer.body[:MAX_ERROR_BODY] or None,
            retry_after=parse_retry_after(answer.headers.get("retry-after")),
        )
