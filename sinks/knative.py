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

from schemas.cloudevent import CloudEventView
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


def event_router_changes(view: CloudEventView) -> dict[str, str]:
    """The attributes VEBA's v0.7 event router would have set (`com.vmware.event.router/…`).

    Data is parsed only for EventEx and ExtendedEvent, whose subject is their eventTypeId."""
    current = view.get("type") or ""
    if current.startswith(HORIZON_TYPE_PREFIX):
        # com.vmware.horizon.<type>.v0 → com.vmware.event.router/horizon.<type>.v0
        return {"type": EVENT_ROUTER_TYPE + "horizon." + current[len(HORIZON_TYPE_PREFIX) :]}
    kind = view.get("eventclass") or "event"
    changes = {"type": EVENT_ROUTER_TYPE + kind}
    if kind != "event":
        data = view.data()
        if isinstance(data, dict) and data.get("EventTypeId"):
            changes["subject"] = str(data["EventTypeId"])
    return changes


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

    async def _post(self, item: SinkEvent) -> None:
        if self._client is None:
            raise RuntimeError("KnativeSink.start() was not called")
        headers, body = self.request_for(item.view)
        try:
            answer = await self._client.post(headers, body)
        except InvalidHeader as exc:  # the record would split the request: no retry helps
            raise DeliveryError(str(exc), retryable=False, dest=self.settings.url) from None
        if 200 <= answer.status < 300:
            return
        raise DeliveryError.from_status(
            answer.status,
            dest=self.settings.url,
            response=answer.body[:MAX_ERROR_BODY] or None,
            retry_after=parse_retry_after(answer.headers.get("retry-after")),
        )
