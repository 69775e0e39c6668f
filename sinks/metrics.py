"""Per-sink metrics, on prometheus_client's default registry (labels: sink, reason)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DELIVERED = Counter("vcstream_sink_delivered_total", "Events the target acknowledged.", ["sink"])
RETRIED = Counter(
    "vcstream_sink_retried_total", "Delivery attempts that failed and were retried.", ["sink"]
)
DEAD_LETTERED = Counter(
    "vcstream_sink_dead_lettered_total",
    "Records written to the dead-letter topic (reason: poison or delivery).",
    ["sink", "reason"],
)
FILTERED = Counter(
    "vcstream_sink_filtered_total", "Events skipped because their type matches no glob.", ["sink"]
)
DELIVERY_LATENCY = Histogram(
    "vcstream_sink_delivery_latency_seconds",
    "From the record being read to the target acknowledging it, retries included.",
    ["sink"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
CONSUMER_LAG = Gauge(
    "vcstream_sink_consumer_lag_records",
    "Records in the sink's topics not yet committed, summed over its partitions.",
    ["sink"],
)
PAUSED_PARTITIONS = Gauge(
    "vcstream_sink_paused_partitions", "Partitions paused for backpressure.", ["sink"]
)
DEAD_LETTER_FAILURES = Counter(
    "vcstream_sink_dead_letter_failures_total",
    "Batches held back because the dead-letter topic did not take a record; retried with "
    "back-off, their offsets uncommitted, /healthz degraded until it does.",
    ["sink"],
)
