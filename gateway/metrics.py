"""The gateway's metrics, on prometheus_client's default registry.

Labels are bounded: `route` is one of the gateway's routes (not the path asked for),
`code` an HTTP status the gateway answers with, `reason` one of `Rejected.cause`'s
values or `unauthorized` / `kafka_unavailable` / `rate_limited`.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "vcstream_gateway_requests_total", "HTTP requests answered.", ["route", "method", "code"]
)
EVENTS_ACCEPTED = Counter(
    "vcstream_gateway_events_accepted_total", "Posted events Kafka acknowledged."
)
EVENTS_REJECTED = Counter(
    "vcstream_gateway_events_rejected_total",
    "Posted events refused, by reason (a refused batch counts each of its events; a "
    "body refused before its events were counted, once).",
    ["reason"],
)
RECEIVED_BYTES = Counter(
    "vcstream_gateway_received_bytes_total", "Bytes of request bodies posted to the webhook."
)
ACK_LATENCY = Histogram(
    "vcstream_gateway_ack_latency_seconds",
    "From a webhook request's events being produced to Kafka acknowledging them all.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
ACTIVE_WATCHES = Gauge("vcstream_gateway_active_watches", "Watches being streamed now.")
WATCH_EVENTS = Counter(
    "vcstream_gateway_watch_events_total", "Events written to watch and read responses."
)
WATCH_BYTES = Counter(
    "vcstream_gateway_watch_bytes_total", "Bytes written to watch and read responses."
)
