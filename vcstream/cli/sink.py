"""`vcstream sink knative|slack|audit` (issue: sinks)."""

from __future__ import annotations

import typer

from vcstream.cli.common import EXIT_RUNTIME, ConfigOption, load_or_exit

app = typer.Typer()


@app.command("sink")
def sink(name: str, config: ConfigOption = None) -> None:
    """Run one sink connector."""
    load_or_exit(config)
    typer.echo(f"sink {name}: not built yet", err=True)
    raise typer.Exit(EXIT_RUNTIME)
