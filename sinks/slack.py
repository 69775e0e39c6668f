"""Alarm events to Slack through an incoming webhook (slack_sdk's async webhook client).

At most one message per `minInterval` per webhook (Slack allows about one a second); a
429 is retried after its `Retry-After` by the runtime, so nothing is lost. When more
than `storm.threshold` alarms arrive within `storm.window`, a batch becomes a single
digest message instead of one message per alarm (a digest of one batch only: the streams
worker's `alarmStorm` summarises a storm on one entity however it is batched, as an
AlarmStorm event rendered here). The webhook URL is a secret: it is never part of an
error, a log line or a dead-letter header.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, ClassVar

import aiohttp
from slack_sdk.webhook.async_client import AsyncWebhookClient

from sinks.base import HELD, DeliveryError, Outcome, Sink, SinkEvent
from sinks.knative import parse_retry_after
from sinks.slack_messages import digest_message, message_for
from vcstream.proxy import proxy_for
from vcstream.settings.sinks import SlackSinkSettings

DEST = "slack webhook"


class SlackSink(Sink):
    kind: ClassVar[str] = "slack"
    settings: SlackSinkSettings

    def __init__(self, settings: SlackSinkSettings, name: str | None = None) -> None:
        super().__init__(settings, name)
        self._url = settings.webhook_url.get_secret_value()
        self._session: aiohttp.ClientSession | None = None
        self._client: AsyncWebhookClient | None = None
        self._send_lock = asyncio.Lock()
        self._next_send = 0.0
        self._recent: deque[tuple[float, str]] = deque()  # (when, event id) in the window
        self._counted: set[str] = set()
        self.digests = 0

    @property
    def dest(self) -> str:
        return DEST

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        proxy = proxy_for(self._url, self.settings.proxy)
        self._client = AsyncWebhookClient(
            self._url,
            timeout=max(1, int(self.settings.delivery.timeout.total_seconds())),
            session=self._session,
            proxy=proxy.url if proxy else None,
            retry_handlers=[],  # the runtime retries, with Knative's delivery settings
        )
        # given none, slack_sdk takes HTTPS_PROXY itself, blind to NO_PROXY and `direct`
        self._client.proxy = proxy.url if proxy else None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _in_storm(self, batch: Sequence[SinkEvent]) -> bool:
        """Counts each alarm once, however often its batch is retried."""
        now = time.monotonic()
        window = self.settings.storm.window.total_seconds()
        while self._recent and self._recent[0][0] < now - window:
            self._counted.discard(self._recent.popleft()[1])
        for item in batch:
            event_id = str(item.event.get_id())
            if event_id not in self._counted:
                self._counted.add(event_id)
                self._recent.append((now, event_id))
        return len(self._recent) > self.settings.storm.threshold

    async def deliver(self, batch: Sequence[SinkEvent]) -> Sequence[Outcome]:
        if self._in_storm(batch) and len(batch) > 1:
            error = await self._send(digest_message([item.event for item in batch]))
            if error is None:
                self.digests += 1
            return [error] * len(batch)
        outcomes: list[Outcome] = []
        for index, item in enumerate(batch):
            error = await self._send(message_for(item.event))
            outcomes.append(error)
            if error is not None:  # keep order: what follows waits for this one
                outcomes += [HELD] * (len(batch) - index - 1)
                break
        return outcomes

    async def _send(self, message: dict[str, Any]) -> DeliveryError | None:
        if self._client is None:
            raise RuntimeError("SlackSink.start() was not called")
        async with self._send_lock:
            delay = self._next_send - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                response = await self._client.send(**message)
            except Exception as exc:  # network: worth a retry; the URL stays out of it
                text = f"{type(exc).__name__}: {exc}".replace(self._url, DEST)
                return DeliveryError(text, retryable=True, dest=DEST)
            finally:
                # spaced from the answer, not the request: a message delayed on the way
                # can then never arrive closer than minInterval to the next one
                self._next_send = time.monotonic() + self.settings.min_interval.total_seconds()
        if 200 <= response.status_code < 300:
            return None
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if retry_after is not None:  # the webhook is rate limited for every partition
            wait = min(retry_after, self.settings.delivery.retry_after_max.total_seconds())
            self._next_send = max(self._next_send, time.monotonic() + wait)
        return DeliveryError.from_status(
            response.status_code,
            dest=DEST,
            response=(response.body or "").encode()[:1024] or None,
            retry_after=retry_after,
        )
