"""`vcstream audit verify|query`: check the hash chains; search stored events."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.common import ConfigOption, load_or_exit
from vcstream.exits import EXIT_CONFIG, EXIT_RUNTIME

if TYPE_CHECKING:
    from sinks.audit.query import AuditQuery
    from sinks.audit.record import AuditRecord
    from sinks.audit.verify import Anchors, VerifyReport
    from vcstream.settings import Settings

app = typer.Typer(help="Audit storage: verify and query.", no_args_is_help=True)


def parse_moment(text: str | None) -> datetime | None:
    """An ISO 8601 time (`2026-11-22T10:00Z`, `2026-11-22`) or an age (`1h`, `PT30M`, `7d`)."""
    if text is None:
        return None
    from vcstream.settings import parse_duration

    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            return datetime.now(UTC) - parse_duration(text)
        except ValueError:
            raise typer.BadParameter(
                f"{text!r} is neither an ISO 8601 time nor an age such as 1h"
            ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@app.command("verify")
def verify(
    config: ConfigOption = None,
    against_topic: Annotated[
        str | None,
        typer.Option(help="Instead: check every offset of a range of this topic is stored once."),
    ] = None,
    range_from: Annotated[
        list[str] | None,
        typer.Option("--from", help="With --against-topic: [PARTITION:]OFFSET or ISO time."),
    ] = None,
    range_to: Annotated[
        list[str] | None,
        typer.Option("--to", help="With --against-topic: [PARTITION:]OFFSET (inclusive) or time."),
    ] = None,
    partition: Annotated[
        list[int] | None, typer.Option(help="With --against-topic: only this partition.")
    ] = None,
    type_glob: Annotated[
        list[str] | None,
        typer.Option("--type", help="With --against-topic: only events of this type (glob)."),
    ] = None,
    report_file: Annotated[
        Path | None, typer.Option("--report", help="With --against-topic: JSON report here.")
    ] = None,
) -> None:
    """Walk every partition's hash chain; name each modified, deleted or reordered record.

    With --against-topic: check that every offset of a range of it is stored once, with its id.
    Each missing, duplicated, wrong-id or unexpected offset is named.

    Exit 0 when intact, 1 when anything is wrong.  Examples:  vcstream audit verify -c vcstream.yaml

      vcstream audit verify -c vcstream.yaml --against-topic vcenter.audit --from 0:1200 --to 0:2199
    """
    settings = load_or_exit(config)
    if against_topic is not None:
        from cli.replay import verify_range

        verify_range(
            settings, against_topic, range_from, range_to, partition, type_glob, report_file
        )
        return
    if range_from or range_to or partition or type_glob or report_file:
        typer.echo("--from, --to, --partition, --type and --report need --against-topic", err=True)
        raise typer.Exit(EXIT_CONFIG)
    import asyncio  # only for the commands that run a loop: a replay starts without it

    anchors = _committed_anchors(settings)
    report = asyncio.run(_verify(settings, anchors))
    for problem in report.problems:
        typer.echo(str(problem))
    summary = f"{report.records} records in {report.partitions} partitions"
    if report.problems:
        typer.echo(f"FAILED: {len(report.problems)} problems; {summary}", err=True)
        raise typer.Exit(EXIT_RUNTIME)
    typer.echo(f"ok: {summary}, hash chains intact")


def _committed_anchors(settings: Settings) -> Anchors:
    """The chain heads the audit sink committed to Kafka; none if Kafka cannot be read."""
    from confluent_kafka import KafkaException

    from sinks.audit.anchors import committed_anchors
    from sinks.registry import group_id, source_topics

    group = group_id("audit", settings)
    try:
        topics = source_topics("audit", settings)
        return committed_anchors(settings.kafka, group, topics, timeout=5)
    except KafkaException as exc:
        typer.echo(
            f"warning: chain heads not checked (Kafka, group {group}): {exc}; deleting the "
            "newest records of a partition goes unnoticed without them",
            err=True,
        )
        return {}


async def _verify(settings: Settings, anchors: Anchors) -> VerifyReport:
    from sinks.audit.store import open_store

    store = open_store(settings.sinks.audit, timeout=10)
    try:
        return await store.verify(anchors)
    finally:
        await store.close()


@app.command("query")
def query(
    config: ConfigOption = None,
    since: Annotated[str | None, typer.Option(help="From this time or age (1h).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this time or age.")] = None,
    type: Annotated[str | None, typer.Option("--type", help="CloudEvent type or glob.")] = None,
    entity: Annotated[str | None, typer.Option(help="Moref, Type:moref or name.")] = None,
    vcenter: Annotated[str | None, typer.Option(help="vCenter UUID, URL or host.")] = None,
    output: Annotated[
        str,
        typer.Option("--output", "-o", help="json (lines), table, or auto: a table on a terminal."),
    ] = "auto",
    limit: Annotated[int, typer.Option(help="Print at most this many (0: all).")] = 0,
    distinct_ids: Annotated[
        bool,
        typer.Option(
            "--distinct-ids", help="Each event id once (stored from several topics: the first)."
        ),
    ] = False,
) -> None:
    """Print stored events that match every filter given, oldest first; each (topic,
    partition, offset) once, with it. JSON lines carry the event as Kafka held it.

    Example:  vcstream audit query -c vcstream.yaml --since 1h --type '*VmPowered*' -o table
    """
    if output not in ("json", "table", "auto"):
        raise typer.BadParameter("--output must be json, table or auto")
    if output == "auto":
        output = "table" if sys.stdout.isatty() else "json"
    settings = load_or_exit(config)
    import asyncio

    from sinks.audit.query import AuditQuery

    spec = AuditQuery(parse_moment(since), parse_moment(until), type, entity, vcenter)
    records = asyncio.run(_collect(settings, spec, limit, distinct_ids))
    if output == "json":
        from sinks.audit.query import as_json_line

        for record in records:
            sys.stdout.buffer.write(as_json_line(record))
        sys.stdout.flush()
        return
    _print_table(records)


async def _collect(
    settings: Settings, spec: AuditQuery, limit: int, distinct_ids: bool
) -> list[AuditRecord]:
    from sinks.audit.store import open_store

    store = open_store(settings.sinks.audit, timeout=10)
    try:
        return await _take(store.query(spec), limit, distinct_ids)
    finally:
        await store.close()


async def _take(
    rows: AsyncIterator[AuditRecord], limit: int, distinct_ids: bool
) -> list[AuditRecord]:
    taken: list[AuditRecord] = []
    ids: set[str] = set()
    async for row in rows:
        if distinct_ids:
            if row["id"] in ids:
                continue
            ids.add(row["id"])
        taken.append(row)
        if limit and len(taken) >= limit:
            break
    return taken


def _print_table(records: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    from sinks.audit.record import event_json

    table = Table("time", "type", "entity", "vCenter", "message", "topic/partition@offset")
    for record in records:
        data = json.loads(event_json(record)).get("data") or {}
        message = data.get("FullFormattedMessage", "") if isinstance(data, dict) else ""
        table.add_row(
            record["time"].astimezone(UTC).isoformat(timespec="seconds"),
            record["type"],
            record["entityName"] or record["entity"] or "",
            record["source"],
            message,
            f"{record['topic']}/{record['partition']}@{record['offset']}",
        )
    Console(width=200).print(table)
