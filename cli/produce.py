"""`vcstream produce`: vCenter events into Kafka, exactly once."""

from __future__ import annotations

import typer

from cli.common import ConfigOption, load_or_exit, start_observability

app = typer.Typer()

EXAMPLE = """
Example configuration:

\b
    kafka:
      bootstrapServers: kafka:9092
    vcenters:
      - name: vc01
        url: https://vc01.example.com/sdk
        username: svc-vcstream
        password: {fromEnv: VC01_PASSWORD}
    horizon:               # optional: Horizon Connection Servers' audit events
      - name: cs01
        url: https://cs01.example.com
        domain: EXAMPLE
        username: svc-vcstream
        password: {fromEnv: CS01_PASSWORD}
    producer:
      startAt: 1h          # with no checkpoint: now | earliest | a history window
      pageSize: 100
"""


@app.command("produce", epilog=EXAMPLE)
def produce(config: ConfigOption = None) -> None:
    """Stream vCenter and Horizon events into the raw topic, exactly once, resuming after a crash.

    Exit 0 after SIGTERM/SIGINT, 1 when Kafka or every vCenter stays unreachable at
    start, 2 for a configuration error (including wrong vCenter credentials).
    """
    settings = load_or_exit(config)
    from producer.app import run  # pyVmomi is slow to import: only this role needs it
    from vcstream.observability import Health

    health = Health()
    server = start_observability(settings, health)
    raise typer.Exit(run(settings, server, health))
