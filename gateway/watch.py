"""The read API: the range of the served topic, one event, and watches.

- `GET /api/v1/range`: earliest and latest (end) offset per partition;
- `GET /api/v1/events/{partition}/{offset}`: that event, structured mode;
- `GET /api/v1/events?partition=&offset=|time=|from=now&until=&type=&subject=`: the
  events from there to the end as it was when asked (or to `until`: a time range), as
  NDJSON (times are Kafka's record times); `watch=true` goes on with every
  later event until the client leaves. `Accept: text/event-stream` gives Server-Sent
  Events instead, whose ids (`partition:offset`, comma-joined over partitions) a client
  sends back as `Last-Event-ID` to resume after the last event it saw.

Each line is `{"partition": p, "offset": o, "event": <the event, structured mode>}`. The
event is written from the record's bytes (`CloudEventView.http_structured`), never
decoded and re-encoded. A watch writes a batch and awaits the client before it reads
the next one, so a slow client slows its own consumer and nothing piles up between.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any, TypeVar

import orjson
from aiohttp import web
from confluent_kafka import Consumer, TopicPartition

from gateway import metrics
from gateway.reader import NotThere, ReadError, TopicReader
from schemas.record import KafkaRecord

T = TypeVar("T")
NDJSON = "application/x-ndjson"
SSE = "text/event-stream"


class BadQuery(Exception):
    pass


def _int(query: Any, name: str) -> int | None:
    value = query.get(name)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise BadQuery(f"{name} must be an integer, not {value!r}") from None
    if number < 0:
        raise BadQuery(f"{name} must not be negative")
    return number


def _time_ms(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadQuery(f"time must be RFC 3339 (2026-01-31T12:00:00Z), not {value!r}") from None
    if when.tzinfo is None:
        raise BadQuery("time needs a time zone (Z or an offset)")
    return int(when.timestamp() * 1000)


def parse_cursor(value: str | None) -> dict[int, int] | None:
    """`Last-Event-ID` (`p:o[,p:o...]`) as the next offset to read per partition."""
    if not value:
        return None
    cursor = {}
    try:
        for part in value.split(","):
            partition, offset = part.split(":")
            cursor[int(partition)] = int(offset) + 1
    except ValueError:
        raise BadQuery(f"Last-Event-ID must be partition:offset[,...], not {value!r}") from None
    if any(next_offset < 0 for next_offset in cursor.values()):
        # -1 is a partition's start before its first record; below, no offset at all
        raise BadQuery(f"Last-Event-ID has an offset below -1: {value!r}")
    return cursor


def cursor_id(last: dict[int, int]) -> bytes:
    """The SSE id: the last offset sent per partition (one less than its start before
    any), so `parse_cursor` of it resumes after what the client saw."""
    return ",".join(f"{p}:{o}" for p, o in sorted(last.items())).encode()


def line(record: KafkaRecord) -> bytes:
    _, event = record.cloudevent().http_structured()
    head = orjson.dumps({"partition": record.partition, "offset": record.offset})[:-1]
    return head + b',"event":' + event + b"}"


class Filter:
    def __init__(self, types: list[str], subjects: list[str]) -> None:
        self.types = types
        self.subjects = subjects

    def __call__(self, record: KafkaRecord) -> bool:
        if not self.types and not self.subjects:
            return True
        view = record.cloudevent()
        try:
            kind, subject = view.type, view.get("subject") or ""
        except UnicodeDecodeError:
            return False  # not a CloudEvent: matches no glob
        return (not self.types or any(fnmatchcase(kind, g) for g in self.types)) and (
            not self.subjects or any(fnmatchcase(subject, g) for g in self.subjects)
        )


class ReadApi:
    def __init__(
        self,
        reader: TopicReader,
        max_watches: int,
        batch_size: int,
        retry_after: str,
        heartbeat: float = 15.0,
    ) -> None:
        self.reader = reader
        self.heartbeat = heartbeat
        self.max_watches = max_watches
        self.batch_size = batch_size
        self.retry_after = retry_after
        self.active = 0
        self.closing = False  # set on shutdown: every watch ends after its current batch

    async def _run(self, call: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        executor: ThreadPoolExecutor = self.reader.executor
        return await loop.run_in_executor(executor, functools.partial(call, *args))

    async def range(self, request: web.Request) -> web.Response:
        try:
            ranges = await self._run(self.reader.range)
        except NotThere as exc:
            return _json(404, {"error": str(exc)})
        except ReadError as exc:
            return _json(503, {"error": str(exc)}, {"Retry-After": self.retry_after})
        partitions = [
            {"partition": p, "earliest": low, "latest": high} for p, (low, high) in ranges.items()
        ]
        return _json(200, {"topic": self.reader.topic, "partitions": partitions})

    async def one(self, request: web.Request) -> web.Response:
        try:
            partition = _int(request.match_info, "partition")
            offset = _int(request.match_info, "offset")
            assert partition is not None and offset is not None  # the route has both
            record = await self._run(self.reader.one, partition, offset)
        except BadQuery as exc:
            return _json(400, {"error": str(exc)})
        except NotThere:
            record = None
        except ReadError as exc:
            return _json(503, {"error": str(exc)}, {"Retry-After": self.retry_after})
        if record is None:
            return _json(404, {"error": f"no committed event at {partition}:{offset}"})
        headers, body = record.cloudevent().http_structured()
        metrics.WATCH_EVENTS.inc()
        metrics.WATCH_BYTES.inc(len(body))
        return web.Response(body=body, headers=headers)

    async def events(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        try:
            partition = _int(query, "partition")
            offset = _int(query, "offset")
            time_ms = _time_ms(query.get("time"))
            until_ms = _time_ms(query.get("until"))
            if until_ms is not None and _watching(query):
                raise BadQuery("until ends a read; a watch has no end")
            resume = parse_cursor(request.headers.get("Last-Event-ID"))
            starts = [offset is not None, time_ms is not None, query.get("from") is not None]
            if sum(starts) > 1:
                raise BadQuery("give one of offset, time and from (now or earliest)")
            if query.get("from") not in (None, "now", "earliest"):
                raise BadQuery("from is now or earliest")
            if query.get("from") == "earliest" or (not any(starts) and not _watching(query)):
                offset = 0  # earliest: librdkafka resets a deleted offset to the earliest
        except BadQuery as exc:
            return _json(400, {"error": str(exc)})
        if self.active >= self.max_watches:
            return _json(
                429,
                {"error": f"{self.max_watches} watches are open, the most this gateway serves"},
                {"Retry-After": self.retry_after},
            )
        self.active += 1
        consumer: Consumer | None = None
        try:
            consumer = await self._run(self.reader.consumer)
            try:
                positions = await self._run(
                    self.reader.start_positions, consumer, partition, offset, time_ms, resume
                )
                ends = (
                    None
                    if _watching(query)
                    else await self._run(self.reader.ends, consumer, positions, until_ms)
                )
            except NotThere as exc:
                return _json(404, {"error": str(exc)})
            except ReadError as exc:
                return _json(503, {"error": str(exc)}, {"Retry-After": self.retry_after})
            await self._run(consumer.assign, positions)
            wanted = Filter(query.getall("type", []), query.getall("subject", []))
            sse = SSE in request.headers.get("Accept", "")
            return await self._stream(request, consumer, positions, wanted, sse, ends)
        finally:
            if consumer is not None:
                await self._run(consumer.close)
            self.active -= 1

    async def _stream(
        self,
        request: web.Request,
        consumer: Consumer,
        positions: list[TopicPartition],
        wanted: Filter,
        sse: bool,
        ends: dict[int, int] | None,
    ) -> web.StreamResponse:
        """Stream to the client until it leaves or, given `ends`, every partition got
        there (records at or after a partition's end are left for the next read)."""
        response = web.StreamResponse(headers={"Content-Type": SSE if sse else NDJSON})
        response.enable_chunked_encoding()
        await response.prepare(request)
        metrics.ACTIVE_WATCHES.inc()  # from here on, every committed event is streamed
        # every partition's start is in the cursor from the first message on
        last = {tp.partition: tp.offset - 1 for tp in positions}
        try:
            if sse:
                # an id without data dispatches no event but is the client's
                # Last-Event-ID: a reconnect before any event resumes at the start
                try:
                    await response.write(b"id: " + cursor_id(last) + b"\n\n")
                except (ConnectionError, RuntimeError):
                    return response  # the client left already
            return await self._pump(request, response, consumer, last, wanted, sse, ends)
        finally:
            metrics.ACTIVE_WATCHES.dec()

    async def _pump(
        self,
        request: web.Request,
        response: web.StreamResponse,
        consumer: Consumer,
        last: dict[int, int],
        wanted: Filter,
        sse: bool,
        ends: dict[int, int] | None,
    ) -> web.StreamResponse:
        """`last`: the last offset read per partition (the SSE cursor), updated here."""
        written_at = time.monotonic()
        while (ends is None or ends) and not self.closing:
            if request.transport is None or request.transport.is_closing():
                break  # the client left while nothing was there to write
            try:
                records, ended = await self._run(self.reader.batch, consumer, self.batch_size)
                if ends is not None:
                    records = [
                        r for r in records if (r.offset or 0) < ends.get(r.partition or 0, -1)
                    ]
            except ReadError as exc:
                await response.write(orjson.dumps({"error": str(exc)}) + b"\n")
                break
            chunk = bytearray()
            for record in records:
                assert record.partition is not None and record.offset is not None
                last[record.partition] = record.offset
                if not wanted(record):
                    continue
                text = line(record)
                if sse:
                    chunk += b"id: " + cursor_id(last) + b"\ndata: " + text + b"\n\n"
                else:
                    chunk += text + b"\n"
                metrics.WATCH_EVENTS.inc()
            if sse and not chunk and time.monotonic() - written_at > self.heartbeat:
                # an SSE comment: keeps proxies from closing a quiet watch as idle
                chunk += b": keepalive\n\n"
            if chunk:
                written_at = time.monotonic()
                metrics.WATCH_BYTES.inc(len(chunk))
                try:
                    # returns once the transport took it: the backpressure on this watch
                    await response.write(bytes(chunk))
                except (ConnectionError, RuntimeError):
                    break
            if ends is not None:
                for partition in ended | await self._run(self.reader.reached, consumer, ends):
                    ends.pop(partition, None)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await response.write_eof()
        return response


def _watching(query: Any) -> bool:
    return str(query.get("watch", "")).lower() in ("true", "1", "yes")


def _json(status: int, body: object, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
    )
