"""`./dev run` (`python -m devenv.up`): local Kafka, vcsim and the whole pipeline, no Docker.

Dev tooling, not a `vcstream` command: the installed package carries no service runners."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from devenv import LocalKafka, LocalVcsim
from devenv.activity import DemoActivity
from devenv.horizon import HorizonActivity, HorizonStandIn
from devenv.pipeline import LocalPipeline, local_config
from devenv.process import cache_dir
from devenv.receivers import CloudEventsDisplay, SlackConsole

app = typer.Typer(help="Run vcstream on this machine without Docker.")


@app.command()
def up(
    kafka_port: Annotated[int, typer.Option(help="Kafka listener port.")] = 9092,
    vcsim_port: Annotated[int, typer.Option(help="vcsim port.")] = 8989,
    knative_port: Annotated[int, typer.Option(help="Local CloudEvents display port.")] = 8081,
    slack_port: Annotated[int, typer.Option(help="Local Slack console port.")] = 8082,
    horizon_port: Annotated[
        int, typer.Option(help="Horizon Connection Server stand-in port (its audit events).")
    ] = 8083,
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
    say = Console()
    ports = {
        "--kafka-port": kafka_port,
        "--kafka-port + 10 (Kafka's controller)": kafka_port + 10,
        "--vcsim-port": vcsim_port,
        "--knative-port": knative_port,
        "--slack-port": slack_port,
        "--horizon-port": horizon_port,
    }
    busy = busy_ports(ports)
    if busy:
        for line in busy:
            say(line, err=True)
        raise typer.Exit(2)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # started from a script's background job (`&`, CI), this process inherits SIGINT
    # ignored, and Python then raises no KeyboardInterrupt: Ctrl-C (kill -INT) must
    # still stop everything
    signal.signal(signal.SIGINT, signal.default_int_handler)
    kafka = LocalKafka(root / "kafka", port=kafka_port, controller_port=kafka_port + 10)
    # no credentials on vcsim's command line (ps): it accepts the pipeline's login as any
    vcsim = LocalVcsim(root / "vcsim", port=vcsim_port, login_required=False)
    display = CloudEventsDisplay(knative_port, say)
    slack = SlackConsole(slack_port, say)
    horizon = HorizonStandIn(horizon_port)
    pipeline: LocalPipeline | None = None
    demo: DemoActivity | None = None
    horizon_demo: HorizonActivity | None = None
    failed = False
    try:
        say(f"starting Kafka on {kafka.bootstrap_servers} ...")
        kafka.start()
        say(f"starting vcsim on {vcsim.url} ...")
        vcsim.start()
        display.start()
        slack.start()
        horizon.start()
        say(f"Horizon stand-in on {horizon.url}")
        config = local_config(kafka, vcsim, root, display.url, slack.url, horizon)
        config_path = LocalPipeline.write_config(root, config)
        env = {"VCSIM_PASSWORD": vcsim.password, "HORIZON_PASSWORD": horizon.password}
        # assigned before it starts: roles started before a failure are stopped too
        pipeline = LocalPipeline(root, config_path, env=env)
        pipeline.start()
        say(f"pipeline starting (config {config_path}, logs {root / 'logs'}) ...")
        pipeline.wait_healthy()
        gateway = f"http://127.0.0.1:{config['gateway']['port']}"
        say(f"gateway: POST CloudEvents to {gateway}/webhook, watch {gateway}/api/v1/events")
        say("all roles healthy; events appear below. Ctrl-C stops everything.")
        if activity:
            demo = DemoActivity(vcsim).start()
            horizon_demo = HorizonActivity(horizon).start()
        while not stop.wait(1):
            dead = pipeline.dead()
            if dead:
                say(f"role(s) exited: {', '.join(dead)}; see {root / 'logs'}", err=True)
                failed = True
                break
    except KeyboardInterrupt:
        pass
    except (RuntimeError, TimeoutError, OSError, subprocess.CalledProcessError) as exc:
        say(f"cannot start: {exc}", err=True)
        failed = True
    finally:
        # a second Ctrl-C (or the terminal's SIGINT to `./dev run | tee`) must not cut
        # the clean-up short: the services run in their own sessions and only this stops
        # them in order (and the kernel, with SIGTERM, if this process dies: ChildProcess)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        say("stopping ...", err=True)
        began = time.monotonic()
        steps: list[tuple[str, Callable[[], object]]] = [
            ("demo activity", demo.stop if demo is not None else lambda: None),
            ("Horizon activity", horizon_demo.stop if horizon_demo is not None else lambda: None),
            ("pipeline", pipeline.stop if pipeline is not None else lambda: None),
            ("CloudEvents display", display.stop),
            ("Slack console", slack.stop),
            ("Horizon stand-in", horizon.stop),
            ("vcsim", vcsim.stop),
            ("Kafka", kafka.stop),
        ]
        for name, step in steps:
            try:
                step()
            except Exception as exc:  # the next service is stopped all the same
                say(f"stopping {name} failed: {exc!r}", err=True)
        say(f"stopped in {time.monotonic() - began:.1f}s", err=True)
    if failed:
        raise typer.Exit(1)


class Console:
    """Prints to the terminal for as long as it is there.

    `./dev run 2>&1 | tee log` and Ctrl-C: tee exits first, and the next line written
    meets a broken pipe. That must not skip the clean-up, so a failed write only stops
    further printing (stdout and stderr go to /dev/null, so Python's own flush at exit
    does not fail either).
    """

    def __init__(self) -> None:
        self.gone = False
        self._lock = threading.Lock()  # the stand-ins print from their server threads

    def __call__(self, line: str, err: bool = False) -> None:
        with self._lock:
            if self.gone:
                return
            try:
                typer.echo(line, err=err)
            except OSError:  # BrokenPipeError; EIO from a terminal that went away
                self.gone = True
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                os.dup2(devnull, sys.stderr.fileno())
                os.close(devnull)


def busy_ports(ports: dict[str, int]) -> list[str]:
    """One line per port something already listens on, naming the option that sets it."""
    found = []
    for option, port in ports.items():
        with socket.socket() as probe:
            # as the services bind: a port left in TIME_WAIT is free for them
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                found.append(
                    f"port {port} is in use ({option}): stop what listens there, "
                    f"or choose another port with {option.split()[0]}"
                )
    return found


if __name__ == "__main__":
    app()
