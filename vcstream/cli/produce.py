"""`vcstream produce`: vCenter events into Kafka (issue: producer)."""

from __future__ import annotations

import typer

from vcstream.cli.common import EXIT_RUNTIME, ConfigOption, load_or_exit

app = typer.Typer()


@app.command("produce")
def produce(config: ConfigOption = None) -> None:
    """Stream vCenter events into the raw topic, exactly once."""
    load_or_exit(config)
    typer.echo("produce: not built yet", err=True)
    raise typer.Exit(EXIT_RUNTIME)
