"""`vcstream replay` (issue: replay)."""

from __future__ import annotations

import typer

from vcstream.cli.common import EXIT_RUNTIME, ConfigOption, load_or_exit

app = typer.Typer()


@app.command("replay")
def replay(config: ConfigOption = None) -> None:
    """Replay a topic from an offset or a time."""
    load_or_exit(config)
    typer.echo("replay: not built yet", err=True)
    raise typer.Exit(EXIT_RUNTIME)
