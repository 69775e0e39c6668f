"""`--to` and `--format` as a ReplayTarget."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from replay.errors import ReplayUsageError
from replay.targets.base import ReplayTarget
from replay.targets.jsonlines import JsonLinesTarget
from sinks.kinds import SINK_KINDS
from vcstream.settings import Settings

Format = Literal["json", "avro"]
SINK_TARGETS = SINK_KINDS  # every sink connector is a replay target


def describe_targets() -> str:
    return f"stdout, file:PATH, {', '.join(SINK_TARGETS)}"


def check_target(to: str, fmt: Format) -> None:
    """Reject a bad --to/--format before anything connects."""
    if to == "stdout" or to.startswith("file:"):
        if to == "file:":
            raise ReplayUsageError("--to file:PATH needs a path")
        if fmt == "avro" and to == "stdout":
            raise ReplayUsageError("--format avro writes a file: use --to file:PATH")
        return
    if to not in SINK_TARGETS:
        raise ReplayUsageError(f"--to {to!r}: expected one of {describe_targets()}")
    if fmt != "json":
        raise ReplayUsageError(f"--format applies to stdout and files, not to --to {to}")


def open_target(
    to: str,
    fmt: Format,
    settings: Settings,
    resume_at: int | None = None,
    recovered: bool = False,
) -> ReplayTarget:
    """`recovered`: a sink's start-up recovery already ran (in the coordinator of
    `--workers`); a worker must not run it, as it would take its peers' files in flight
    for leftovers of a crash."""
    check_target(to, fmt)
    if to == "stdout":
        return JsonLinesTarget.stdout()
    if to.startswith("file:"):
        path = Path(to.removeprefix("file:"))
        if resume_at is not None and not path.exists():
            raise ReplayUsageError(f"cannot resume: {path} (the interrupted replay's file) is gone")
        if fmt == "avro":
            from replay.targets.avrofile import AvroFileTarget

            return AvroFileTarget.open(path, resume_at)
        return JsonLinesTarget.file(path, resume_at)
    if to == "audit" and settings.sinks.audit.backend == "files":
        # written in the replay's own thread, made durable at checkpoints (see the module)
        from replay.targets.auditfiles import AuditFilesTarget

        return AuditFilesTarget(settings.sinks.audit, recover=not recovered)
    return _sink_target(to, settings, start=not recovered)


def _sink_target(kind: str, settings: Settings, start: bool = True) -> ReplayTarget:
    from replay.targets.sink import SinkTarget
    from sinks.deadletters import DeadLetterWriter
    from sinks.registry import SinkNotConfigured, create_sink, dead_letter_topic

    try:
        sink = create_sink(kind, settings)
        topic = dead_letter_topic(kind, settings)
    except SinkNotConfigured as exc:
        raise ReplayUsageError(f"--to {kind}: {exc}") from None
    return SinkTarget(sink, DeadLetterWriter(settings.kafka, topic), start=start)
