"""One replay from start to report: plan (or resume), read, write, save, report.

    outcome = run_replay(settings, request, stop=threading.Event())

The CLI wraps this with argument parsing, Ctrl-C and exit codes; tests call it directly.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from confluent_kafka.admin import AdminClient

from replay.errors import ReplayUsageError
from replay.plan import OffsetOracle, Plan, plan_client_config, resolve
from replay.progress import Progress, progress_for
from replay.reader import RangeReader
from replay.report import build_report
from replay.runner import ReplayLoop
from replay.spec import ReplaySpec
from replay.state import ReplayState, default_state_path, fingerprint
from replay.tally import PartitionTally
from replay.targets.base import Position, ReplayItem, ReplayTarget
from replay.targets.factory import Format, check_target, open_target
from vcstream.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplayRequest:
    spec: ReplaySpec
    to: str
    format: Format = "json"
    dry_run: bool = False
    resume: bool = False
    group: str | None = None
    rate: float | None = None
    state_path: Path | None = None
    progress_stream: IO[str] | None = None
    workers: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def command(self, settings: Settings) -> dict[str, Any]:
        """What identifies "the same replay" for --resume."""
        spec = self.spec
        return {
            "bootstrap": settings.kafka.bootstrap_servers,
            "topic": spec.topic,
            "from": [str(b) for b in spec.from_offsets]
            or (spec.from_time.isoformat() if spec.from_time else "beginning"),
            "to": [str(b) for b in spec.to_offsets]
            or (spec.to_time.isoformat() if spec.to_time else None),
            "count": spec.count,
            "partitions": sorted(spec.partitions),
            "types": list(spec.type_globs),
            "target": self.to,
            "format": self.format,
            "dryRun": self.dry_run,
            # only when given, so the resume files of one-process replays keep their names
            **({"workers": self.workers} if self.workers > 1 else {}),
        }


@dataclass
class ReplayOutcome:
    complete: bool
    report: dict[str, Any]
    state: ReplayState
    state_path: Path

    def stopped_at(self) -> str:
        ranges = {r.partition: r for r in self.state.plan.ranges}
        parts = []
        for p, tally in sorted(self.state.tallies.items()):
            if tally.next_offset < ranges[p].stop:
                parts.append(f"partition {p} at offset {tally.next_offset}")
        return ", ".join(parts) or "every partition at its end"


def plan_for(settings: Settings, spec: ReplaySpec) -> Plan:
    admin = AdminClient(plan_client_config(settings.kafka))
    return resolve(spec, OffsetOracle(admin, spec.topic))


def _initial_state(
    settings: Settings, request: ReplayRequest, command: dict[str, Any], path: Path
) -> ReplayState:
    key = fingerprint(command)
    if request.resume:
        if not path.exists():
            raise ReplayUsageError(
                f"--resume: no interrupted replay of this command (looked for {path})"
            )
        try:
            state = ReplayState.load(path)
        except ValueError as exc:
            raise ReplayUsageError(str(exc)) from None
        if state.fingerprint != key:
            raise ReplayUsageError(
                f"--resume: {path} belongs to a different replay ({state.command}); "
                "run the interrupted command unchanged, with --resume"
            )
        state.runs += 1
        return state
    if path.exists():
        log.warning("an interrupted replay of this range was saved in %s; starting afresh", path)
    plan = plan_for(settings, request.spec)
    tallies = {r.partition: PartitionTally(r.partition, r.start) for r in plan.ranges}
    return ReplayState(key, command, plan, tallies)


def run_replay(
    settings: Settings, request: ReplayRequest, stop: threading.Event | None = None
) -> ReplayOutcome:
    check_target(request.to, request.format)
    if request.workers > 1:
        from replay.workers import check_workers, run_workers

        check_workers(request)
    stop = stop or threading.Event()
    command = request.command(settings)
    path = request.state_path or default_state_path(fingerprint(command))
    state = _initial_state(settings, request, command, path)
    if request.workers > 1:
        complete = run_workers(settings, request, state, path, stop)
    else:
        complete = replay_range(settings, request, state, path, stop)
    if complete:
        path.unlink(missing_ok=True)
    report = build_report(state, complete=complete, target=request.to, dry_run=request.dry_run)
    return ReplayOutcome(complete, report, state, path)


def replay_range(
    settings: Settings,
    request: ReplayRequest,
    state: ReplayState,
    path: Path,
    stop: threading.Event,
    progress: Progress | None = None,
    recovered: bool = False,
) -> bool:
    """Replay what `state` has left of its plan, saving `state` to `path` after every
    batch; True when the whole plan was replayed. One process (or one worker's share)."""
    target = _open(settings, request, state, recovered)
    try:
        reader = RangeReader(
            settings.kafka,
            state.plan,
            {p: (t.next_offset, t.read) for p, t in state.tallies.items()},
            group=request.group,
            batch_size=_batch_size(request.rate, target, state.plan),
        )
    except BaseException:
        target.close()
        raise
    progress = progress or _progress(request, state)
    # what exists now (modules, clients, the target) lives for the whole replay: the
    # collector need not scan it again each time it runs, which cost ~0.9 s of a
    # 100,000-record replay into a file (~20% of the run)
    gc.freeze()
    # a batch is thousands of messages, each with a list of header tuples, alive until
    # the batch is written: at the default threshold (700) the collector ran every ~60
    # messages, walked the live batch and promoted it to be walked again (5% of a
    # replay's CPU in py-spy). Nothing in the loop makes cycles; collect seldom
    thresholds = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD, *thresholds[1:])
    began = time.monotonic()
    elapsed_before = state.elapsed_seconds

    saved_at = began - SAVE_INTERVAL  # the first durable batch is saved at once

    def save() -> None:
        nonlocal saved_at
        saved_at = time.monotonic()
        state.elapsed_seconds = elapsed_before + saved_at - began
        state.save(path)

    def after_batch(marker: int | None) -> None:
        # the target's marker as it was right after the batch counted last was written
        state.target_marker = marker
        if time.monotonic() - saved_at >= SAVE_INTERVAL:  # the module's, read each time
            save()

    complete = False
    try:
        loop = ReplayLoop(
            request.spec,
            reader,
            target,
            state.tallies,
            progress,
            stop,
            rate=request.rate,
            after_batch=after_batch,
        )
        complete = loop.run()
        if complete:
            progress.complete()
    finally:
        gc.set_threshold(*thresholds)
        progress.close()
        reader.close()
        target.close()
        state.complete = complete
        save()
    return complete


class _NoTarget(ReplayTarget):
    """--dry-run: read, check, filter and count, deliver nothing."""

    name = "dry-run"
    takes_lines = True  # the cheapest batch the loop makes

    def write(self, items: Sequence[ReplayItem]) -> set[Position]:
        return set()

    def write_lines(self, pieces: Sequence[bytes]) -> None:
        return None


def _open(
    settings: Settings, request: ReplayRequest, state: ReplayState, recovered: bool
) -> ReplayTarget:
    if request.dry_run:
        return _NoTarget()
    resume_at = None
    if request.resume and request.to.startswith("file:"):
        resume_at = state.target_marker or 0
    return open_target(request.to, request.format, settings, resume_at, recovered)


# allocations between young collections while replaying (default 700): see replay_range
GC_THRESHOLD = 200_000

# the resume file is written after the first durable batch, then at most this often,
# and always when the replay ends or stops: not after every batch, since a write and
# its rename cost ~2-6 ms, 5% of a replay into a file at 2,000-record batches. What it
# holds is always one durable batch's counts and target marker, so a kill between two
# writes only sends again (for a file: cuts and writes again) what came after it
SAVE_INTERVAL = 0.5

# records read at once: a batch is held twice (one written while the next is checked),
# each record with what its check read (attributes, parsed data): 2,000 keep a replay
# into audit files (librdkafka and imports ~125 MB of it) at ~147 MB RSS
MAX_BATCH = 2_000


def _batch_size(rate: float | None, target: ReplayTarget, plan: Plan) -> int:
    if rate is not None:
        # small batches under a rate limit, so Ctrl-C and the progress line stay responsive
        return max(1, min(1000, int(rate / 4)))
    # a read batch is split by partition before it reaches the target: read enough that
    # each partition's share is a full batch of the target's (a sink's batch.maxRecords),
    # since every batch costs a sink a round trip, a transaction or a file
    partitions = max(1, sum(1 for r in plan.ranges if not r.empty))
    return max(1000, min(MAX_BATCH, target.batch_records * partitions))


def _progress(request: ReplayRequest, state: ReplayState) -> Progress:
    done = sum(t.read for t in state.tallies.values())
    return progress_for(
        state.plan.expected_records, done, f"replay {state.plan.topic}", request.progress_stream
    )
