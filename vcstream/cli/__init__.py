"""The `vcstream` command: one sub-command per role, `--config FILE` for each.

Exit codes: 0 success, 1 runtime failure, 2 bad usage or configuration.
"""

from __future__ import annotations

import typer

from vcstream.cli import config, dev

app = typer.Typer(
    name="vcstream",
    help="Durable, replayable vCenter events on Kafka.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(config.app, name="config")
app.add_typer(dev.app, name="dev")


def main() -> None:
    app()
