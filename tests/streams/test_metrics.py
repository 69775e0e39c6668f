"""The worker's latency histogram, counted in plain ints (streams.metrics.Latencies), is
exported exactly as prometheus_client's own Histogram exports the same observations."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streams.metrics import LATENCY, Latencies

# on a bound, between bounds, below the first, above the last, and zero
OBSERVATIONS = [0.0, 0.0005, 0.001, 0.0011, 0.04, 0.05, 2.5, 59.9, 60.0, 61.0, 3600.0]


def samples(registry: CollectorRegistry, name: str) -> dict[tuple[str, str], float]:
    text = generate_latest(registry).decode()
    return {
        (sample.name, sample.labels.get("le", "")): sample.value
        for family in text_string_to_metric_families(text)
        if family.name == name
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def test_latencies_export_what_prometheus_histogram_exports_for_the_same_values() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    latencies = Latencies("t_seconds", "test", LATENCY.bounds, registry=ours)
    histogram = Histogram("t_seconds", "test", buckets=LATENCY.bounds, registry=theirs)
    for value in OBSERVATIONS:
        latencies.observe(value)
        histogram.observe(value)
    exported = samples(ours, "t_seconds")
    assert exported == samples(theirs, "t_seconds")
    assert exported[("t_seconds_count", "")] == len(OBSERVATIONS)
    assert exported[("t_seconds_bucket", "0.001")] == 3  # le: a bound's own value counts


def test_worker_latency_is_in_the_default_registry_under_its_documented_name() -> None:
    from prometheus_client import REGISTRY

    assert ("vcstream_streams_processing_latency_seconds_count", "") in samples(
        REGISTRY, "vcstream_streams_processing_latency_seconds"
    )
