"""POST on the webhook path: parse and check every event, then write them all, answer
2xx only once Kafka acknowledged each one.

A request is checked whole before anything is produced, so a batch with one bad event
writes nothing; 4xx names the bad event. When Kafka does not acknowledge in time the
answer is 503 with Retry-After and says which events were (or may have been) written.
"""

from __future__ import annotations

import time

import orjson
from aiohttp import web

from gateway import metrics
from gateway.events import Limits, Rejected, parse, to_records
from gateway.ratelimit import TokenBucket
from gateway.writer import EventWriter, NotAcknowledged
from vcstream.settings.gateway import GatewaySettings


def _error(
    status: int, reason: str, headers: dict[str, str] | None = None, **extra: object
) -> web.Response:
    body = orjson.dumps({"error": reason, **extra})
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


class Ingest:
    def __init__(self, settings: GatewaySettings, writer: EventWriter) -> None:
        self.settings = settings
        self.writer = writer
        self.limits = Limits(settings.max_event_size, settings.max_batch_events)
        self.retry_after = str(max(1, round(settings.retry_after.total_seconds())))
        self.bucket = (
            TokenBucket(settings.rate_limit, settings.rate_burst or settings.max_batch_events)
            if settings.rate_limit
            else None
        )

    async def handle(self, request: web.Request) -> web.Response:
        length = request.content_length
        if length is not None and length > self.settings.max_request_size:
            metrics.EVENTS_REJECTED.labels("too_large").inc()
            return _error(413, f"{length} bytes, at most {self.settings.max_request_size}")
        try:
            # aiohttp stops reading at client_max_size (maxRequestSize) with its own 413
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            metrics.EVENTS_REJECTED.labels("too_large").inc()
            return _error(413, f"the body is larger than {self.settings.max_request_size} bytes")
        metrics.RECEIVED_BYTES.inc(len(body))
        try:
            events = parse(request.headers, body, self.limits)
            records = to_records(events, self.settings.key)
        except Rejected as rejected:
            metrics.EVENTS_REJECTED.labels(rejected.cause).inc(rejected.events)
            return _error(rejected.status, rejected.reason)
        if self.bucket is not None:
            if len(records) > self.bucket.burst:  # would never fit: waiting cannot help
                metrics.EVENTS_REJECTED.labels("too_large").inc(len(records))
                return _error(
                    413, f"{len(records)} events, the rate limit takes {self.bucket.burst} at once"
                )
            wait = self.bucket.take(len(records))
            if wait:
                metrics.EVENTS_REJECTED.labels("rate_limited").inc(len(records))
                return _error(
                    429,
                    f"over the rate limit of {self.bucket.rate:g} events/s",
                    {"Retry-After": TokenBucket.retry_after(wait)},
                )
        started = time.perf_counter()
        try:
            await self.writer.write(records)
        except NotAcknowledged as failed:
            metrics.EVENTS_REJECTED.labels("kafka_unavailable").inc(
                len(records) - len(failed.written)
            )
            metrics.EVENTS_ACCEPTED.inc(len(failed.written))
            ids = [event.get_id() for event in events]
            return _error(
                503,
                str(failed),
                {"Retry-After": self.retry_after},
                written=[ids[i] for i in failed.written],
                unknown=[ids[i] for i in failed.unknown],
            )
        metrics.ACK_LATENCY.observe(time.perf_counter() - started)
        metrics.EVENTS_ACCEPTED.inc(len(records))
        return web.Response(
            status=200,
            body=orjson.dumps({"accepted": len(records), "topic": self.writer.topic}),
            content_type="application/json",
        )
