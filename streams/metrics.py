"""Prometheus metrics of the stream processors (default registry)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString


class Tally:
    """A counter family counted in plain ints on the event loop and handed to Prometheus
    when it collects. `Counter.inc` takes a lock and checks its value on every call, and
    the worker counts an event two to six times (in and out of each route and processor
    it passes): a dict update is a fraction of that. Only the event loop counts;
    `collect` (the /metrics thread) reads a copy, which the GIL makes atomic."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self._name = name
        self._documentation = documentation
        self.labelnames = list(labelnames)
        self._counts: dict[tuple[str, ...], int] = {}
        REGISTRY.register(self)

    def inc(self, *labels: str) -> None:
        counts = self._counts
        counts[labels] = counts.get(labels, 0) + 1

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self._name, self._documentation, labels=self.labelnames)
        for labels, value in self._counts.copy().items():
            family.add_metric(list(labels), value)
        yield family


EVENTS_IN = Tally(
    "vcstream_streams_events_in",
    "Events a processor received, by processor and CloudEvent type.",
    ["processor", "type"],
)
EVENTS_OUT = Tally(
    "vcstream_streams_events_out",
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


class Latencies:
    """A histogram observed in plain ints on the event loop and handed to Prometheus
    when it collects, as `Tally` does for counters: `Histogram.observe` takes a lock and
    scans its buckets on every call, and the worker observes every event it finishes.
    The buckets are Prometheus' (`le`: a value equal to a bound falls in its bucket)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        buckets: Sequence[float],
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self._name = name
        self._documentation = documentation
        self.bounds = tuple(float(bound) for bound in buckets)
        # each bound's `le` as prometheus_client's own histograms write it
        bounds = (*self.bounds, float("inf"))
        self._le: list[str] = [floatToGoString(bound) for bound in bounds]  # type: ignore[no-untyped-call]
        self._counts = [0] * len(bounds)  # the last: above every bound (+Inf)
        self._sum = 0.0
        registry.register(self)

    def observe(self, seconds: float) -> None:
        self._counts[bisect_left(self.bounds, seconds)] += 1
        self._sum += seconds

    def collect(self) -> Iterator[HistogramMetricFamily]:
        counts, total = self._counts.copy(), self._sum
        cumulative, buckets = 0, []
        for le, count in zip(self._le, counts, strict=True):
            cumulative += count
            buckets.append((le, cumulative))
        yield HistogramMetricFamily(
            self._name, self._documentation, buckets=buckets, sum_value=total
        )


LATENCY = Latencies(
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
