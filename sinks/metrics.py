"""Per-sink metrics, on prometheus_client's default registry (labels: sink, reason)."""

from __future__ import annotations

from typing import Any

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


def observe_many(child: Any, amount: float, count: int) -> None:
    """`child.observe(amount)` `count` times, as one update of the histogram child.

    A batch's events share one latency (read together, acknowledged together), and an
    `observe` per event (a lock and a bucket search each) was ~3% of the audit sink's
    CPU. prometheus_client has no weighted observe, so this updates the child's sum and
    bucket as its `observe` does (its internals `_sum`, `_buckets`, `_upper_bounds`,
    0.20 to 0.26); a release without them gets the public way, and
    tests/sinks/test_delivery.py holds both ways to the same samples."""
    if count <= 0:
        return
    try:
        total, buckets, bounds = child._sum, child._buckets, child._upper_bounds
    except AttributeError:
        for _ in range(count):
            child.observe(amount)
        return
    total.inc(amount * count)
    for index, bound in enumerate(bounds):
        if amount <= bound:
            buckets[index].inc(count)
            break
