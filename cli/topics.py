"""`vcstream topics create`: make every topic the pipeline uses, processors' outputs
included (the compose topic-init job; the Strimzi topic list holds the same)."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import ConfigOption, load_or_exit
from vcstream.exits import EXIT_CONFIG, EXIT_RUNTIME

app = typer.Typer(help="Kafka topics of the pipeline.", no_args_is_help=True)


@app.command("create")
def create(
    config: ConfigOption = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for Kafka.")] = 30,
) -> None:
    """Create the topics that do not exist yet (existing ones are left as they are)."""
    from confluent_kafka import KafkaException

    from streams.discovery import DiscoveryError
    from streams.topics import every_topic
    from vcstream.kafka import KafkaLoginRejected, ensure_topics

    settings = load_or_exit(config)
    try:
        specs = every_topic(settings)
    except DiscoveryError as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG) from None
    try:
        ensure_topics(settings.kafka, specs, timeout=timeout)
    except KafkaLoginRejected as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG) from None
    except KafkaException as exc:
        typer.echo(f"cannot create topics: {exc.args[0].str()}", err=True)
        raise typer.Exit(EXIT_RUNTIME) from None
    for spec in specs:
        typer.echo(spec.name)
