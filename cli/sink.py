"""`vcstream sink knative|slack|audit --config FILE`: run one sink connector."""

from __future__ import annotations

import logging
import signal
import sys
from enum import StrEnum
from typing import Annotated

import typer

from cli.common import ConfigOption, load_or_exit, start_observability
from sinks.kinds import SINK_KINDS
from vcstream.exits import EXIT_CONFIG, EXIT_RUNTIME

app = typer.Typer()
log = logging.getLogger("vcstream.sink")


# the connectors' names as the command's choices (sinks.kinds: named there once)
SinkChoice = StrEnum("SinkChoice", {kind: kind for kind in SINK_KINDS})  # type: ignore[misc]


@app.command("sink")
def sink(
    kind: Annotated[SinkChoice, typer.Argument(help="Which connector to run.")],
    config: ConfigOption = None,
) -> None:
    """Deliver the sink's topics to its target; commit after delivery; dead-letter failures.

    Example:  vcstream sink knative --config deploy/local/vcstream.yaml

    SIGTERM or Ctrl-C stops reading, finishes the batches in flight and commits them.
    """
    settings = load_or_exit(config)
    import asyncio  # not at the top: every command imports this module, few run a loop

    from sinks import registry
    from sinks.runtime import SinkRunner
    from vcstream.kafka import KafkaLoginRejected

    try:
        connector = registry.create_sink(kind.value, settings)
    except registry.SinkNotConfigured as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise typer.Exit(EXIT_CONFIG) from None
    from vcstream.observability import Health

    health = Health()
    server = start_observability(settings, health)
    runner = SinkRunner(
        connector,
        settings.kafka,
        topics=registry.source_topics(kind.value, settings),
        group_id=registry.group_id(kind.value, settings),
        dead_letter_topic=registry.dead_letter_topic(kind.value, settings),
        health=health,
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await runner.run(stop)

    try:
        asyncio.run(main())
    except KafkaLoginRejected as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise typer.Exit(EXIT_CONFIG) from None
    except Exception as exc:
        log.exception("sink %s failed: %s", kind.value, exc)
        raise typer.Exit(EXIT_RUNTIME) from None
    finally:
        if server is not None:
            server.stop()
