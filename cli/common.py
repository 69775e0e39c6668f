"""What every role's command does first: load and validate settings, set up logging."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vcstream.exits import EXIT_CONFIG

if TYPE_CHECKING:  # prometheus_client only for the roles that serve metrics
    from vcstream.observability import Health, ObservabilityServer
    from vcstream.settings import Settings

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar="VCSTREAM_CONFIG",
        help="YAML configuration file (VCSTREAM_* environment variables override it).",
        dir_okay=False,
    ),
]


def load_or_exit(path: Path | None) -> Settings:
    """Validate before anything connects; a bad key exits 2 with one line per problem."""
    # pydantic and the settings models (~160 ms) only for a command that runs: every
    # role's module imports this one, and `--help` or a usage error needs none of it
    from vcstream.logging import configure_logging, register_secrets, secrets_of
    from vcstream.settings import ConfigError, load_settings

    try:
        settings = load_settings(path)
    except ConfigError as exc:
        for line in str(exc).splitlines():
            print(f"configuration error: {line}", file=sys.stderr)
        raise typer.Exit(EXIT_CONFIG) from None
    register_secrets(secrets_of(settings))
    configure_logging(settings.logging)
    return settings


def start_observability(settings: Settings, health: Health) -> ObservabilityServer | None:
    from vcstream.observability import ObservabilityServer

    if not settings.metrics.enabled:
        return None
    return ObservabilityServer(settings.metrics, health).start()
