"""Prometheus metrics of the stream processors (default registry)."""

from __future__ import annotations

from functools import cache

from prometheus_client import Counter, Gauge, Histogram

EVENTS_IN = Counter(
    "vcstream_streams_events_in_total",
    "Events a processor received, by processor and CloudEvent type.",
    ["processor", "type"],
)
EVENTS_OUT = Counter(
    "vcstream_streams_events_out_total",
    "Events a processor wrote, by processor and CloudEvent type.",
    ["processor", "type"],
)
DROPPED = Counter(
    "vcstream_streams_events_dropped_total",
    "Events an inline processor dropped (duplicates), by processor.",
    ["processor"],
)
SUPPRESSED = Counter(
    "vcstream_streams_events_suppressed_total",
    "Events an inline processor kept from the alerting routes, by processor and reason.",
    ["processor", "reason"],
)
ENRICHED = Counter(
    "vcstream_streams_alarms_enriched_total", "Alarm events joined with their definition."
)
ENRICHMENT_MISSING = Counter(
    "vcstream_streams_enrichment_missing_total",
    "Alarm events emitted unenriched: no definition within the wait.",
)
DEAD_LETTERED = Counter(
    "vcstream_streams_dead_lettered_total",
    "Records sent to the dead-letter topic, by stage and reason.",
    ["processor", "reason"],
)
LATENCY = Histogram(
    "vcstream_streams_processing_latency_seconds",
    "From reading a record to Kafka acknowledging everything made from it.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
PENDING = Gauge("vcstream_streams_alarms_waiting", "Alarm events waiting for their definition.")
DEFINITIONS = Gauge(
    "vcstream_streams_alarm_definitions", "Alarm definitions known (table size at last index)."
)
BAD_DEFINITIONS = Counter(
    "vcstream_streams_alarm_definitions_unreadable_total",
    "Alarm definition records that could not be decoded.",
)


# `labels()` hashes and validates its arguments under a lock on every call; the children
# are looked up once per (processor, type) instead, which the per-event path needs
@cache
def events_in(processor: str, event_type: str) -> Counter:
    return EVENTS_IN.labels(processor, event_type)


@cache
def events_out(processor: str, event_type: str) -> Counter:
    return EVENTS_OUT.labels(processor, event_type)
