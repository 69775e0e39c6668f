"""`vcstream audit verify|query` (issue: sinks, audit storage)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Audit storage: verify and query.", no_args_is_help=True)
