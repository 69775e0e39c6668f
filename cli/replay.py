"""`vcstream replay`: a topic, from an offset or a time, into a sink, a file or stdout."""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from cli.common import ConfigOption, load_or_exit
from vcstream.exits import EXIT_CONFIG, EXIT_RUNTIME

if TYPE_CHECKING:
    from vcstream.settings import Settings

app = typer.Typer()

EXIT_INTERRUPTED = 130  # the shell's convention for a command stopped by SIGINT


@app.command("replay")
def replay(
    topic: Annotated[str, typer.Option(help="The topic to replay.")],
    to: Annotated[
        str, typer.Option(help="Target: stdout, file:PATH, audit, knative or slack.")
    ] = "stdout",
    from_offset: Annotated[
        list[str] | None,
        typer.Option(help="Start at [PARTITION:]OFFSET (inclusive); repeat per partition."),
    ] = None,
    from_time: Annotated[
        str | None, typer.Option(help="Start at the first record at or after this ISO time.")
    ] = None,
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Start at the earliest retained record.")
    ] = False,
    to_offset: Annotated[
        list[str] | None,
        typer.Option(help="Stop after [PARTITION:]OFFSET (inclusive); default: the end now."),
    ] = None,
    to_time: Annotated[
        str | None, typer.Option(help="Stop before the first record at or after this time.")
    ] = None,
    count: Annotated[
        int | None, typer.Option(help="At most N records from each partition.")
    ] = None,
    partition: Annotated[
        list[int] | None, typer.Option(help="Only this partition; repeatable.")
    ] = None,
    type_glob: Annotated[
        list[str] | None,
        typer.Option("--type", help="Only events whose CloudEvent type matches; repeatable."),
    ] = None,
    output_format: Annotated[
        str, typer.Option("--format", help="For stdout/file targets: json (lines) or avro.")
    ] = "json",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Read, decode, filter and report; write nothing.")
    ] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the interrupted run of this command.")
    ] = False,
    group: Annotated[
        str | None,
        typer.Option(help="Commit replayed offsets under this group (default: commit nothing)."),
    ] = None,
    rate: Annotated[
        float | None, typer.Option(help="At most this many records per second.", min=0.1)
    ] = None,
    state: Annotated[
        Path | None,
        typer.Option(help="Resume file (default: ~/.local/state/vcstream/replay/<hash>.json)."),
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="Also write the report as JSON to this file.")
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            help="Processes, each replaying a share of the partitions (file: JSON lines, "
            "audit and --dry-run; a resumed replay needs the same number)."
        ),
    ] = 1,
    config: ConfigOption = None,
) -> None:
    """Replay a topic from an offset or a time, for audit. Never joins a consumer group.

    Examples:

      vcstream replay --topic vcenter.events --from-time 2026-11-22T08:00:00Z \\
          --to-time 2026-11-22T09:00:00Z --to audit --report replay.json

      vcstream replay --topic vcenter.events --from-offset 0:1200 --count 10 \\
          --type 'com.vmware.vsphere.Vm*'

    Exit 0 when the range was replayed, 1 on a runtime failure, 2 on a bad range or
    configuration (the message states the available range), 130 when stopped by Ctrl-C
    (run the same command with --resume to continue).
    """
    settings = load_or_exit(config)
    from replay.errors import ReplayUsageError
    from replay.session import ReplayRequest, run_replay
    from replay.spec import ReplaySpec, parse_offset, parse_time
    from vcstream.kafka import KafkaLoginRejected

    try:
        if output_format not in ("json", "avro"):
            raise ReplayUsageError(f"--format {output_format!r}: expected json or avro")
        fmt: Literal["json", "avro"] = "avro" if output_format == "avro" else "json"
        spec = ReplaySpec(
            topic=topic,
            from_offsets=tuple(parse_offset(o, "--from-offset") for o in from_offset or ()),
            from_time=parse_time(from_time, "--from-time") if from_time else None,
            from_beginning=from_beginning,
            to_offsets=tuple(parse_offset(o, "--to-offset") for o in to_offset or ()),
            to_time=parse_time(to_time, "--to-time") if to_time else None,
            count=count,
            partitions=tuple(partition or ()),
            type_globs=tuple(type_glob or ()),
        )
        request = ReplayRequest(
            spec,
            to,
            fmt,
            dry_run,
            resume,
            group,
            rate,
            state,
            progress_stream=sys.stderr,
            workers=workers,
        )
        stop = threading.Event()
        with _stop_on_sigint(stop):
            outcome = run_replay(settings, request, stop)
    except ReplayUsageError as exc:
        typer.echo(f"replay: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG) from None
    except KafkaLoginRejected as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG) from None
    except KeyboardInterrupt:
        typer.echo("replay: aborted; the position of the last completed batch is saved", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except Exception as exc:
        typer.echo(f"replay failed: {type(exc).__name__}: {exc}", err=True)
        typer.echo("replay: run the same command with --resume to continue", err=True)
        raise typer.Exit(EXIT_RUNTIME) from None

    from replay.report import report_text

    if report is not None:
        report.write_text(json.dumps(outcome.report, indent=2) + "\n")
    # stdout may be the target itself: then the report goes to stderr
    typer.echo(report_text(outcome.report), err=(to == "stdout"))
    if not outcome.complete:
        typer.echo(
            f"replay: stopped at {outcome.stopped_at()}; run the same command with --resume "
            f"to continue (state: {outcome.state_path})",
            err=True,
        )
        raise typer.Exit(EXIT_INTERRUPTED)


class _stop_on_sigint:
    """First Ctrl-C: finish the current batch, save, report. Second: abort at once."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self._previous: object = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.stop.is_set():
            raise KeyboardInterrupt
        self.stop.set()
        print(
            "\nreplay: stopping after the current batch (Ctrl-C again to abort)",
            file=sys.stderr,
            flush=True,
        )

    def __enter__(self) -> None:
        self._previous = signal.signal(signal.SIGINT, self._handle)

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self._previous)  # type: ignore[arg-type]


def verify_range(
    settings: Settings,
    topic: str,
    start: list[str] | None,
    stop: list[str] | None,
    partitions: list[int] | None,
    types: list[str] | None,
    report: Path | None,
) -> None:
    """`vcstream audit verify --against-topic`: lives with replay, whose range words and
    reports it shares. Exit 0 when every offset is stored once, 1 otherwise, 2 for a
    range the topic cannot give (the message states the available range)."""
    from replay.audit_check import range_spec, verify_audit_store
    from replay.errors import ReplayUsageError
    from replay.verify import verify_text

    try:
        spec = range_spec(topic, start or (), stop or (), partitions or (), types or ())
        result = verify_audit_store(settings, spec)
    except ReplayUsageError as exc:
        typer.echo(f"audit verify: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG) from None
    except Exception as exc:
        typer.echo(f"audit verify failed: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(EXIT_RUNTIME) from None
    if report is not None:
        report.write_text(json.dumps(result, indent=2) + "\n")
    typer.echo(verify_text(result))
    if not result["ok"]:
        raise typer.Exit(EXIT_RUNTIME)
