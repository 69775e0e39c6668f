"""The sink connectors by name: the one list the registry, the `vcstream sink` command and
replay's `--to` read, so a new connector is named here once. Imports nothing, so the CLI
can offer the names without loading any connector."""

from __future__ import annotations

# name → (module, class) of the connector, imported only when that sink runs
CONNECTORS: dict[str, tuple[str, str]] = {
    "knative": ("sinks.knative", "KnativeSink"),
    "slack": ("sinks.slack", "SlackSink"),
    "audit": ("sinks.audit.sink", "AuditSink"),
}
SINK_KINDS: tuple[str, ...] = tuple(CONNECTORS)
