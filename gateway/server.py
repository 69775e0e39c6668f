"""The gateway's aiohttp server: routes, authentication and request metrics, and its
lifetime (the topic is created if missing, the producer flushed on the way out)."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from gateway import metrics
from gateway.auth import Authenticator
from gateway.ingest import Ingest
from gateway.reader import TopicReader
from gateway.watch import ReadApi
from gateway.writer import EventWriter
from vcstream.kafka import ensure_topics
from vcstream.observability import Flag, Health
from vcstream.settings import Settings
from vcstream.topics import gateway_topic

log = logging.getLogger("vcstream.gateway")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
READ_API = web.AppKey("read_api", ReadApi)


def _route_name(request: web.Request) -> str:
    info = request.match_info.route.resource
    return info.canonical if info is not None else "unmatched"


def build_app(settings: Settings, writer: EventWriter, reader: TopicReader) -> web.Application:
    gateway = settings.gateway
    auth = Authenticator(gateway.auth)
    ingest = Ingest(gateway, writer)
    api = ReadApi(
        reader,
        gateway.watch.max_watches,
        gateway.watch.batch_size,
        ingest.retry_after,
        gateway.watch.heartbeat.total_seconds(),
    )

    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = _route_name(request)  # a route's pattern, never the path: bounded labels
        try:
            if not auth.allows(request.headers.get("Authorization")):
                if request.method == "POST":
                    metrics.EVENTS_REJECTED.labels("unauthorized").inc()
                response: web.StreamResponse = web.json_response(
                    {"error": "missing or wrong credentials"},
                    status=401,
                    headers=auth.challenge(),
                )
            else:
                response = await handler(request)
        except web.HTTPException as exc:  # aiohttp's own 404 and 405
            metrics.REQUESTS.labels(route, request.method, str(exc.status)).inc()
            raise
        metrics.REQUESTS.labels(route, request.method, str(response.status)).inc()
        return response

    app = web.Application(middlewares=[observe], client_max_size=gateway.max_request_size)
    app.router.add_post(gateway.path, ingest.handle)
    app.router.add_get("/api/v1/range", api.range)
    app.router.add_get("/api/v1/events/{partition}/{offset}", api.one)
    app.router.add_get("/api/v1/events", api.events)
    app[READ_API] = api
    return app


def _ssl_context(settings: Settings) -> ssl.SSLContext | None:
    tls = settings.gateway.tls
    if tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.cert_file, tls.key_file)
    return context


async def serve(settings: Settings, health: Health, stop: asyncio.Event) -> None:
    """Serve until `stop` is set; requests in flight get their answer before the exit."""
    gateway = settings.gateway
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, ensure_topics, settings.kafka, [gateway_topic(settings)])
    kafka = Flag()
    health.add("kafka", kafka)
    writer = EventWriter(
        settings.kafka,
        gateway.topic,
        gateway.ack_timeout,
        lambda problem: kafka.down(problem) if problem else kafka.ok(),
    )
    kafka.ok()
    # one thread per watch blocked in consume(), plus a few for range and single reads
    executor = ThreadPoolExecutor(gateway.watch.max_watches + 4, thread_name_prefix="gw-read")
    reader = TopicReader(settings.kafka, gateway.watch.topic or settings.topics.events, executor)
    app = build_app(settings, writer, reader)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, gateway.host, gateway.port, ssl_context=_ssl_context(settings))
    await site.start()
    port = runner.addresses[0][1]
    log.info(
        "gateway listening on port %d (%s, POST %s → %s)",
        port,
        "https" if gateway.tls else "http",
        gateway.path,
        gateway.topic,
    )
    try:
        await stop.wait()
    finally:
        # watches never end by themselves: without this the shutdown would wait for them
        app[READ_API].closing = True
        await runner.cleanup()
        await loop.run_in_executor(None, writer.close)
        executor.shutdown(wait=False, cancel_futures=True)
