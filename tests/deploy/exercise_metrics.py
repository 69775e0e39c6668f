"""A process that exports every metric the roles define, each with a sample.

`python -m tests.deploy.exercise_metrics PORT` imports the roles' metric modules (see
metrics_catalog), gives every labelled metric one child and one observation, and
serves /metrics until killed: the dashboard test points a real Prometheus at it. The
end-to-end test does the same with the real roles; this one runs without them.
"""

from __future__ import annotations

import sys
import threading
import time

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, Summary

from streams.metrics import Latencies, Tally
from tests.deploy.metrics_catalog import metric_modules
from vcstream.observability import Health, ObservabilityServer
from vcstream.settings.observability import MetricsSettings


def exercise() -> None:
    import importlib

    for module in metric_modules():
        importlib.import_module(module)
    for collector in list(REGISTRY._collector_to_names):
        if isinstance(collector, Tally):  # the streams' counts, collected as counters
            collector.inc(*["demo"] * len(collector.labelnames))
            continue
        if isinstance(collector, Latencies):  # the streams' latency, collected as a histogram
            collector.observe(0.05)
            continue
        if not isinstance(collector, Counter | Gauge | Histogram | Summary):
            continue
        if not collector._name.startswith("vcstream_"):
            continue
        labels = dict.fromkeys(collector._labelnames, "demo")
        metric = collector.labels(**labels) if labels else collector
        if isinstance(metric, Counter):
            metric.inc(2)
        elif isinstance(metric, Gauge):
            metric.set(1)
        else:
            metric.observe(0.05)
    # the producer's ages are computed at scrape time from its last commit
    from producer.metrics import PROGRESS

    PROGRESS.committed("demo", time.time() - 1)


def main() -> None:
    exercise()
    port = int(sys.argv[1])
    ObservabilityServer(MetricsSettings(host="127.0.0.1", port=port), Health()).start()
    print("serving", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
