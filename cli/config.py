"""`vcstream config check FILE`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml

from cli.common import load_or_exit

app = typer.Typer(help="Inspect configuration.", no_args_is_help=True)


@app.command("check")
def check(
    path: Annotated[Path, typer.Argument(help="The YAML configuration file.", dir_okay=False)],
) -> None:
    """Validate FILE and print the effective configuration, secrets redacted.

    Example:  vcstream config check deploy/local/vcstream.yaml
    """
    settings = load_or_exit(path)
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
