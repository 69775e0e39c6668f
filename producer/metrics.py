"""The producer's Prometheus metrics (default registry), labelled by vCenter name.

Ages are computed when scraped, from timestamps the workers record, so a stalled
worker shows a growing age instead of a frozen one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

EVENTS = Counter(
    "vcstream_producer_events_total",
    "vCenter events committed to the raw topic.",
    ["vcenter", "type"],
)
TRANSACTIONS_COMMITTED = Counter(
    "vcstream_producer_transactions_committed_total",
    "Kafka transactions committed (events plus checkpoint).",
    ["vcenter"],
)
TRANSACTIONS_ABORTED = Counter(
    "vcstream_producer_transactions_aborted_total",
    "Kafka transactions aborted and retried.",
    ["vcenter"],
)
RECONNECTS = Counter(
    "vcstream_producer_reconnects_total",
    "New vCenter sessions after a lost connection, expired session or restart.",
    ["vcenter"],
)
HISTORY_GAPS = Counter(
    "vcstream_producer_history_gaps_total",
    "Times events the producer expected were no longer in the vCenter's history.",
    ["vcenter", "reason"],
)
EVENTS_MISSED = Counter(
    "vcstream_producer_events_missed_total",
    "Event keys skipped in the vCenter's sequence (events lost before they were read).",
    ["vcenter"],
)
EVENTS_REPEATED = Counter(
    "vcstream_producer_events_repeated_total",
    "Events the vCenter returned again after they were written, skipped (written once).",
    ["vcenter"],
)
ALARM_DEFINITIONS = Counter(
    "vcstream_producer_alarm_definitions_total",
    "Alarm definitions published (action=published) or tombstoned (action=removed).",
    ["vcenter", "action"],
)
READ_INTERVAL = Gauge(
    "vcstream_producer_read_interval_seconds",
    "How long a caught-up worker waits between two reads: producer.commitInterval less "
    "the overhead (late wake-up, read, commit) nine in ten of its recent cycles stayed "
    "within. Near the "
    "setting on a quiet machine; it shrinks as the machine gets busier, and near 0 the "
    "latency budget is used up by the overhead alone.",
    ["vcenter"],
)

WAITING_FOR_CHANGE = Gauge(
    "vcstream_producer_waiting_for_change",
    "1 while the worker is caught up and waits for its vCenter to report a new event "
    "(WaitForUpdatesEx, at most producer.pollInterval), 0 while it reads, commits or polls "
    "(a vCenter without change notifications).",
    ["vcenter"],
)
DOORBELL_REARMS = Counter(
    "vcstream_producer_doorbell_rearms_total",
    "Times the worker replaced its change notifications (a new PropertyCollector) after "
    "a busy spell instead of reading every change queued since its last wait.",
    ["vcenter"],
)


class Progress(Collector):
    """Checkpoint age and collector lag per vCenter, computed at scrape time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._checkpoint_at: dict[str, float] = {}
        self._newest_event_at: dict[str, float] = {}

    def committed(self, vcenter: str, newest_event_time: float | None) -> None:
        now = time.time()
        with self._lock:
            self._checkpoint_at[vcenter] = now
            if newest_event_time is not None:
                self._newest_event_at[vcenter] = newest_event_time

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = time.time()
        with self._lock:
            checkpoints = dict(self._checkpoint_at)
            newest = dict(self._newest_event_at)
        age = GaugeMetricFamily(
            "vcstream_producer_checkpoint_age_seconds",
            "Seconds since this vCenter's checkpoint was last committed.",
            labels=["vcenter"],
        )
        for vcenter, moment in checkpoints.items():
            age.add_metric([vcenter], now - moment)
        yield age
        lag = GaugeMetricFamily(
            "vcstream_producer_collector_lag_seconds",
            "Now minus the createdTime of the newest event committed for this vCenter.",
            labels=["vcenter"],
        )
        for vcenter, moment in newest.items():
            lag.add_metric([vcenter], now - moment)
        yield lag


PROGRESS = Progress()
REGISTRY.register(PROGRESS)

# Horizon servers (producer.horizon_worker), labelled by the configured server name.
# Their transactions count in the vcstream_producer_transactions_* counters above, under
# the server's name in the `vcenter` label (one writer class serves both sources).
HORIZON_EVENTS = Counter(
    "vcstream_producer_horizon_events_total",
    "Horizon audit events committed to the raw topic, by Horizon event type.",
    ["server", "type"],
)
HORIZON_UNAVAILABLE = Counter(
    "vcstream_producer_horizon_unavailable_total",
    "Polls of a Horizon server that failed (unreachable, timeout, 5xx, login refused).",
    ["server"],
)
HORIZON_LOGINS = Counter(
    "vcstream_producer_horizon_logins_total",
    "Horizon logins (how=login) and access tokens renewed (how=refresh).",
    ["server", "how"],
)
HORIZON_HISTORY_GAPS = Counter(
    "vcstream_producer_horizon_history_gaps_total",
    "Times a Horizon server's oldest returned event was newer than the checkpoint "
    "(events at the checkpoint time and maybe after it are gone: some may be lost).",
    ["server"],
)
