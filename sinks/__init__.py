"""The sink connectors: Kafka topics to a Knative Broker, Slack and audit storage.

- `sinks.base`: the connector interface (`Sink.deliver(batch)`), `SinkEvent`,
  `DeliveryError`, `HELD`; a new sink is one module implementing it.
- `sinks.delivery.BatchDelivery`: decode, type filter, retries (Knative's DeliverySpec),
  dead letters; usable without a consumer group (replay).
- `sinks.runtime.SinkRunner`: the consumer group, per-partition batches, backpressure,
  commit after delivery, graceful shutdown.
- `sinks.kinds`: the connectors by name, the one list the registry, `vcstream sink` and
  replay's `--to` read.
- `sinks.registry`: `create_sink(kind, settings)` and per-sink defaults.
- Connectors: `sinks.knative`, `sinks.slack`, `sinks.audit`.
"""
