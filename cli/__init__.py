"""The `vcstream` command: one sub-command per role, `--config FILE` for each.

Exit codes: 0 success, 1 runtime failure, 2 bad usage or configuration.
Each role's commands live in their own module here and import their role lazily, so
`vcstream --help` stays fast and a role's dependencies load only when it runs.
"""

from __future__ import annotations

import os

import typer

# pydantic looks for plugins in the entry points of every installed distribution when it
# builds its first validator (typer's, parsing the command line): ~10 ms of every
# command (a replay's start-up to its fork: median 0.334 -> 0.322 s, 12 alternating
# runs). vcstream's models want no plugin; a PYDANTIC_DISABLE_PLUGINS of the user's own
# is kept.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

from cli import audit, config, gateway, produce, replay, sink, streams, topics

app = typer.Typer(
    name="vcstream",
    help="Durable, replayable vCenter events on Kafka.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(config.app, name="config")
app.add_typer(topics.app, name="topics")
app.add_typer(produce.app)
app.add_typer(streams.app, name="streams")
app.add_typer(sink.app)
app.add_typer(replay.app)
app.add_typer(gateway.app)
app.add_typer(audit.app, name="audit")


def main() -> None:
    app()
