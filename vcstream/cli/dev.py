"""`vcstream dev up`: local Kafka + vcsim and the pipeline, no Docker."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer

from vcstream.devenv import LocalKafka, LocalVcsim
from vcstream.devenv.process import cache_dir

app = typer.Typer(help="Run vcstream on this machine without Docker.", no_args_is_help=True)


@app.command("up")
def up(
    kafka_port: Annotated[int, typer.Option(help="Kafka listener port.")] = 9092,
    vcsim_port: Annotated[int, typer.Option(help="vcsim port.")] = 8989,
    workdir: Annotated[
        Path | None, typer.Option(help="Where data lives (default: .cache/dev).")
    ] = None,
) -> None:
    """Start Kafka and vcsim on 127.0.0.1 and run the pipeline until Ctrl-C."""
    root = workdir or cache_dir() / "dev"
    kafka = LocalKafka(root / "kafka", port=kafka_port, controller_port=kafka_port + 1)
    vcsim = LocalVcsim(root / "vcsim", port=vcsim_port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        typer.echo(f"starting Kafka on {kafka.bootstrap_servers} ...")
        kafka.start()
        typer.echo(f"starting vcsim on {vcsim.url} ...")
        vcsim.start()
        typer.echo("ready; Ctrl-C stops everything")
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        typer.echo("stopping ...", err=True)
        vcsim.stop()
        kafka.stop()
    sys.exit(0)
