"""`vcstream dev up`: local Kafka, vcsim and the whole pipeline, no Docker."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Annotated

import typer

from vcstream.devenv import LocalKafka, LocalVcsim
from vcstream.devenv.activity import DemoActivity
from vcstream.devenv.pipeline import LocalPipeline, local_config
from vcstream.devenv.process import cache_dir
from vcstream.devenv.receivers import CloudEventsDisplay, SlackConsole

app = typer.Typer(help="Run vcstream on this machine without Docker.", no_args_is_help=True)


@app.command("up")
def up(
    kafka_port: Annotated[int, typer.Option(help="Kafka listener port.")] = 9092,
    vcsim_port: Annotated[int, typer.Option(help="vcsim port.")] = 8989,
    knative_port: Annotated[int, typer.Option(help="Local CloudEvents display port.")] = 8081,
    slack_port: Annotated[int, typer.Option(help="Local Slack console port.")] = 8082,
    activity: Annotated[
        bool, typer.Option(help="Power VMs off/on and raise alarms in vcsim now and then.")
    ] = True,
    workdir: Annotated[Path | None, typer.Option(help="Data folder (default .cache/dev).")] = None,
) -> None:
    """Start Kafka, vcsim and every vcstream role on 127.0.0.1; Ctrl-C stops everything.

    Knative deliveries and Slack messages are printed by local stand-ins; audit files go
    to <workdir>/audit. Each role's log is in <workdir>/logs.
    """
    root = workdir or cache_dir() / "dev"
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    kafka = LocalKafka(root / "kafka", port=kafka_port, controller_port=kafka_port + 10)
    vcsim = LocalVcsim(root / "vcsim", port=vcsim_port)
    display = CloudEventsDisplay(knative_port, typer.echo)
    slack = SlackConsole(slack_port, typer.echo)
    pipeline: LocalPipeline | None = None
    demo: DemoActivity | None = None
    try:
        typer.echo(f"starting Kafka on {kafka.bootstrap_servers} ...")
        kafka.start()
        typer.echo(f"starting vcsim on {vcsim.url} ...")
        vcsim.start()
        display.start()
        slack.start()
        config = local_config(kafka, vcsim, root, display.url, slack.url)
        config_path = LocalPipeline.write_config(root, config)
        pipeline = LocalPipeline(root, config_path, env={"VCSIM_PASSWORD": vcsim.password}).start()
        typer.echo(f"pipeline starting (config {config_path}, logs {root / 'logs'}) ...")
        pipeline.wait_healthy()
        gateway = f"http://127.0.0.1:{config['gateway']['port']}"
        typer.echo(f"gateway: POST CloudEvents to {gateway}/webhook, watch {gateway}/api/v1/events")
        typer.echo("all roles healthy; events appear below. Ctrl-C stops everything.")
        if activity:
            demo = DemoActivity(vcsim).start()
        while not stop.wait(1):
            dead = pipeline.dead()
            if dead:
                typer.echo(f"role(s) exited: {', '.join(dead)}; see {root / 'logs'}", err=True)
                raise typer.Exit(1)
    except KeyboardInterrupt:
        pass
    finally:
        typer.echo("stopping ...", err=True)
        began = time.monotonic()
        if demo is not None:
            demo.stop()
        if pipeline is not None:
            pipeline.stop()
        display.stop()
        slack.stop()
        vcsim.stop()
        kafka.stop()
        typer.echo(f"stopped in {time.monotonic() - began:.1f}s", err=True)
