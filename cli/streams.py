"""`vcstream streams worker`: the Faust stream processors."""

from __future__ import annotations

import typer

from cli.common import ConfigOption, load_or_exit, start_observability

app = typer.Typer(help="Stream processors (Faust).", no_args_is_help=True)


@app.command("worker")
def worker(config: ConfigOption = None) -> None:
    """Run the stream processors: alarm enrichment, routes, user processors.

    Example: vcstream streams worker --config vcstream.yaml
    """
    settings = load_or_exit(config)
    from streams.worker import run_worker

    code = run_worker(settings, lambda health: start_observability(settings, health))
    if code:
        raise typer.Exit(code)  # 1 crashed, 2 configuration (a property, a refused login)
