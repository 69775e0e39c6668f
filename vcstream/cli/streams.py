"""`vcstream streams worker`: the Faust stream processors (issue: streams)."""

from __future__ import annotations

import typer

from vcstream.cli.common import EXIT_RUNTIME, ConfigOption, load_or_exit

app = typer.Typer(help="Stream processors (Faust).", no_args_is_help=True)


@app.command("worker")
def worker(config: ConfigOption = None) -> None:
    """Run the stream processors."""
    load_or_exit(config)
    typer.echo("streams: not built yet", err=True)
    raise typer.Exit(EXIT_RUNTIME)
