"""`vcstream config check [-c FILE]`, `vcstream config reference`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import ConfigOption, load_or_exit
from vcstream.exits import EXIT_CONFIG

app = typer.Typer(help="Inspect configuration.", no_args_is_help=True)


@app.command("check")
def check(
    path: Annotated[
        Path | None,
        typer.Argument(help="The YAML configuration file (same as --config).", dir_okay=False),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Validate the configuration and print it as every role would load it, secrets redacted.

    The file comes from --config / -c or VCSTREAM_CONFIG like every other command (or as
    the argument, as before).

    Example:  vcstream config check -c deploy/compose/vcstream.yaml
    """
    if path is not None and config is not None and path != config:
        typer.echo(f"configuration error: two files given ({path} and {config})", err=True)
        raise typer.Exit(EXIT_CONFIG)
    settings = load_or_exit(path or config)
    import yaml  # here, so that a command other than this one does not pay for it

    effective = settings.model_dump(mode="json", by_alias=True)
    typer.echo(yaml.safe_dump(effective, sort_keys=False), nl=False)


@app.command("reference")
def reference(
    readme: Annotated[
        Path | None, typer.Option(help="Rewrite the reference section of this README.")
    ] = None,
) -> None:
    """Print the configuration reference (Markdown), generated from the settings model."""
    from vcstream.settings.reference import reference_markdown, replace_in

    if readme is None:
        typer.echo(reference_markdown())
        return
    readme.write_text(replace_in(readme.read_text()))
