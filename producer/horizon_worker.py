"""One Horizon Connection Server's audit events into Kafka, on its own thread.

The loop: ask for the events from the checkpoint's time to now (every page), keep
those not yet written (HorizonPosition), encode them and write them with the new
checkpoint in one Kafka transaction; once caught up, wait `pollInterval`. The position
in memory only advances after a commit, so after any failure the worker reads again
from it:

- server unreachable, 5xx, timeout, login refused: retried with exponential backoff
  (producer.reconnect), the health check and a metric say so; 401 is handled by the
  client (refresh, then log in again);
- Kafka unavailable or the outcome of a commit unknown: a new transactional producer
  and the position re-read from the checkpoint topic, which is the truth.

Horizon has no change notification, so this polls; the commit is not overlapped with
the next read (producer.pipeline does that for vCenter): audit events arrive at human
rates, and one transaction per poll is far from any limit.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import Counter
from typing import Any

from producer import metrics
from producer.horizon_client import HorizonClient, HorizonLoginRejected, HorizonUnavailable
from producer.horizon_position import HorizonPosition, encode_checkpoint, load_position
from producer.pipeline import MAX_BATCH_EVENTS
from producer.supervision import SourceWorker
from producer.writer import (
    Outgoing,
    TransactionalWriter,
)
from schemas.horizon import encode_horizon
from vcstream.observability import Flag, Health
from vcstream.settings import Settings
from vcstream.settings.horizon import HorizonSettings

log = logging.getLogger(__name__)


def now_ms() -> int:
    return int(time.time() * 1000)


def check_login(server: HorizonSettings, timeout: float) -> str | None:
    """At start-up: the problem when the server refuses the credentials, else None.

    A refused login is a configuration error, shown at once (exit 2) as for a vCenter;
    a server that cannot be reached now is left to its worker, which keeps trying.
    """
    client = HorizonClient(server, timeout)
    try:
        client.login()
    except HorizonLoginRejected as exc:
        return str(exc)
    except HorizonUnavailable as exc:
        log.warning("%s; its worker keeps trying", exc)
        return None
    client.logout()
    return None


def transactional_id(prefix: str, source: str) -> str:
    """One per server, stable across restarts and renames of its label."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    return f"{prefix}.horizon.{digest}"


class HorizonWorker(SourceWorker[HorizonPosition]):
    kind = "Horizon"
    source_errors = (HorizonUnavailable, HorizonLoginRejected)

    def __init__(
        self, server: HorizonSettings, settings: Settings, stop: threading.Event, health: Health
    ) -> None:
        super().__init__(f"horizon-{server.name}", server.name, settings, stop, Flag("connecting"))
        self.server = server
        health.add(f"horizon:{server.name}", self.source_flag)
        health.add(f"kafka:horizon:{server.name}", self.kafka_flag)
        self.client = HorizonClient(server, settings.producer.request_timeout.total_seconds())
        self._delay = settings.producer.reconnect.initial_delay.total_seconds()
        self._logins = 0
        self._refreshes = 0

    # ---- the outer loop (SourceWorker.run): recover from every failure ----------------

    def _step(self) -> None:
        caught_up = self._poll()
        self._delay = self.settings.producer.reconnect.initial_delay.total_seconds()
        if caught_up:
            self.stop.wait(self.server.poll_interval.total_seconds())

    def _source_failed(self, exc: Exception) -> None:
        self._server_down(str(exc))

    def _close_source(self) -> None:
        self.client.logout()

    def _server_down(self, problem: str) -> None:
        """Backoff, doubled after each failure up to reconnect.maxDelay."""
        self.source_flag.down(problem)
        metrics.HORIZON_UNAVAILABLE.labels(self.server.name).inc()
        log.warning("%s; next attempt in %.1fs", problem, self._delay)
        self.stop.wait(self._delay)
        self._delay = min(
            self._delay * 2, self.settings.producer.reconnect.max_delay.total_seconds()
        )

    def _writer_for(self) -> TransactionalWriter:
        if self._writer is None:
            producer = self.settings.producer
            self._writer = TransactionalWriter(
                self.settings.kafka,
                transactional_id(producer.transactional_id_prefix, self.server.url),
                producer.transaction_timeout,
                self.server.name,
                self.stop,
                self._kafka_state,
            )
            self._writer.start()
        return self._writer

    # ---- one poll ---------------------------------------------------------------------

    def _poll(self) -> bool:
        """Read and write what is new; True when caught up with the server."""
        writer = self._writer_for()
        if self._position is None:
            self._position = self._resume(writer)
        position = self._position
        until = now_ms()
        to_ms = until
        while True:
            events, complete = self.client.audit_events(position.time_ms, to_ms)
            if complete or to_ms == position.time_ms:
                break
            # too many to read at once: a narrower window, whatever order the server
            # pages in (only a window read whole can move the position past it)
            to_ms = position.time_ms + (to_ms - position.time_ms) // 2
        self._count_logins()
        self.source_flag.ok()
        self._check_gap(position, events)
        fresh = sorted(filter(position.is_new, events), key=lambda e: (e["time"], e["id"]))
        for start in range(0, len(fresh), MAX_BATCH_EVENTS):
            self._commit(writer, fresh[start : start + MAX_BATCH_EVENTS])
        if not complete:
            # one millisecond holds more events than one read: what was read is written,
            # the rest cannot be reached by time and is skipped, counted as a gap
            metrics.HORIZON_HISTORY_GAPS.labels(self.server.name).inc()
            log.warning(
                "Horizon %s: gap: more events at %d ms than one read holds (%d); the rest "
                "is skipped",
                self.server.name,
                to_ms,
                len(events),
            )
        if to_ms < until or not complete:
            # everything up to to_ms has been read: the next read starts after it, or an
            # empty stretch (or a dense millisecond) would be narrowed into again and
            # again (in memory only: after a restart the checkpoint's position is as good)
            self._position = HorizonPosition(to_ms + 1)
        return to_ms == until and complete

    def _check_gap(self, position: HorizonPosition, events: list[dict[str, Any]]) -> None:
        """The events at the checkpoint's time are gone: the history no longer reaches it."""
        if not position.ids or not events:
            return  # a start boundary has no event to find again
        oldest = min(event["time"] for event in events)
        if oldest > position.time_ms:
            metrics.HORIZON_HISTORY_GAPS.labels(self.server.name).inc()
            log.warning(
                "Horizon %s: gap: the oldest event the server returns (%d ms) is newer than "
                "the checkpoint (%d ms); events in between may be lost",
                self.server.name,
                oldest,
                position.time_ms,
            )

    def _commit(self, writer: TransactionalWriter, events: list[dict[str, Any]]) -> None:
        assert self._position is not None
        source = self.server.url
        topics = self.settings.topics
        after = self._position.after(events)
        records: list[Outgoing] = [(topics.events, encode_horizon(e, source)) for e in events]
        records.append((topics.checkpoints, encode_checkpoint(source, after)))
        writer.commit(records)
        self._position = after
        for kind, count in Counter(str(e.get("type")) for e in events).items():
            metrics.HORIZON_EVENTS.labels(self.server.name, kind).inc(count)
        log.debug(
            "Horizon %s: %d event(s) up to %d ms", self.server.name, len(events), after.time_ms
        )

    def _resume(self, writer: TransactionalWriter) -> HorizonPosition:
        """The committed checkpoint; on a first start, a boundary committed right away."""
        settings = self.settings
        stored = load_position(settings.kafka, settings.topics.checkpoints, self.server.url)
        if stored is not None:
            log.info("Horizon %s: resuming after %d ms", self.server.name, stored.time_ms)
            return stored
        window = settings.producer.history_window()
        now = now_ms()
        begin = 0 if window is None else max(0, now - int(window.total_seconds() * 1000))
        position = HorizonPosition(begin)
        # committed at once, so a restart before the first event keeps this start
        writer.commit([(settings.topics.checkpoints, encode_checkpoint(self.server.url, position))])
        log.info(
            "Horizon %s: no checkpoint; starting at %d ms (startAt %s)",
            self.server.name,
            begin,
            settings.producer.start_at,
        )
        return position

    def _count_logins(self) -> None:
        logins, refreshes = self.client.logins, self.client.refreshes
        if logins > self._logins:
            metrics.HORIZON_LOGINS.labels(self.server.name, "login").inc(logins - self._logins)
        if refreshes > self._refreshes:
            metrics.HORIZON_LOGINS.labels(self.server.name, "refresh").inc(
                refreshes - self._refreshes
            )
        self._logins, self._refreshes = logins, refreshes
