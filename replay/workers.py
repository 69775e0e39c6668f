"""`--workers N`: one process per share of the partitions, for targets that allow it.

A replay in one process is bound by one core (decoding and writing hold the GIL). With
workers, the coordinator (this module, in the command's process) splits the plan's
partitions into N shares of about equal size, and each worker (a process: see `start_method`)
replays its share exactly as a one-process replay would: its own reader, target and
resume file (`<state>.worker-<k>.json`). The coordinator merges the workers' counts
into the one report. Partitions never move between workers, so each partition's order,
the audit hash chain and the checksum are those of a one-process replay.

Targets: `file:` JSON lines (each worker writes a part file, joined into the file in
worker order once all are complete, the first by a rename: lines of different
partitions interleave in any case), `audit` (each partition is stored by one worker;
the store's crash recovery runs once, here, before the workers start) and `--dry-run`.
Not: stdout (one stream: lines of several processes would interleave mid-line),
`--format avro` (one Avro container cannot take blocks from several writers), knative
and slack (their ordering per key and rate limits are kept per process; N processes
would send N times the configured rate).

Stopping: the coordinator passes a stop (SIGINT/SIGTERM) on as SIGTERM; each worker
finishes its batch and saves. A worker whose coordinator died stops the same way, so
`--resume` continues every share from its own saved position.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import shutil
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from replay.errors import ReplayUsageError
from replay.plan import Plan
from replay.progress import LineProgress
from replay.state import ReplayState
from replay.tally import PartitionTally

if TYPE_CHECKING:
    from multiprocessing.context import ForkContext, SpawnContext
    from multiprocessing.process import BaseProcess

    from replay.session import ReplayRequest
    from vcstream.settings import Settings

MAX_WORKERS = 64
EXIT_STOPPED = 130


class ReplayWorkerError(RuntimeError):
    """A worker failed; its share stopped at its last saved batch (see `--resume`)."""


def check_workers(request: ReplayRequest) -> None:
    """Reject `--workers` for a target that cannot take several writers, saying why."""
    workers, to = request.workers, request.to
    if not 1 <= workers <= MAX_WORKERS:
        raise ReplayUsageError(f"--workers {workers}: expected 1..{MAX_WORKERS}")
    if request.dry_run:
        return
    if to == "stdout":
        raise ReplayUsageError(
            "--workers with --to stdout: several processes cannot share one stream "
            "without splitting lines; use --to file:PATH"
        )
    if to.startswith("file:") and request.format == "avro":
        raise ReplayUsageError(
            "--workers with --format avro: one Avro container file takes one writer; "
            "use --format json, or --to audit for Avro audit files"
        )
    if to in ("knative", "slack"):
        raise ReplayUsageError(
            f"--workers with --to {to}: its rate limits and per-key order are kept per "
            "process, so N workers would send N times the configured rate; use one process"
        )


def shares(plan: Plan, workers: int) -> list[list[int]]:
    """Partitions per worker, largest ranges first onto the least loaded worker; empty
    ranges are left out, and so are workers that would get nothing."""
    load = [0] * workers
    split: list[list[int]] = [[] for _ in range(workers)]
    sizes = {r.partition: Plan(plan.topic, (r,)).expected_records for r in plan.ranges}
    for partition in sorted(sizes, key=lambda p: (-sizes[p], p)):
        if sizes[partition] == 0:
            continue
        least = load.index(min(load))
        split[least].append(partition)
        load[least] += sizes[partition]
    return [sorted(share) for share in split if share]


def worker_state_path(path: Path, index: int) -> Path:
    return path.with_name(f"{path.stem}.worker-{index}.json")


def part_path(target: str, index: int) -> Path:
    return Path(f"{target.removeprefix('file:')}.part-{index}")


def run_workers(
    settings: Settings,
    request: ReplayRequest,
    state: ReplayState,
    path: Path,
    stop: threading.Event,
) -> bool:
    """Replay `state`'s plan with the request's workers; the merged counts end up in
    `state` (saved to `path`); True when every share is complete."""
    began = time.monotonic()
    elapsed_before = state.elapsed_seconds
    # the same on --resume: the plan is the saved one and N is part of the command
    split = shares(state.plan, request.workers)
    state.save(path)
    if request.to == "audit" and not request.dry_run:
        _recover_audit_store(settings)
    portable = replace(request, progress_stream=None)  # a stream does not cross processes
    context: ForkContext | SpawnContext = (
        multiprocessing.get_context("fork")
        if start_method() == "fork"
        else multiprocessing.get_context("spawn")
    )
    # as gc.freeze's documentation has it for a fork: what exists now is left out of
    # every later collection, so no worker's collector touches (and copies) the pages it
    # shares with the coordinator, and the coordinator's last collection, as the
    # interpreter exits, does not walk it again (~60-110 ms at the end of every replay)
    gc.freeze()
    processes = []
    for index, partitions in enumerate(split):
        process = context.Process(
            target=_worker_main,
            args=(settings, portable, state, path, index, partitions, len(split)),
            name=f"replay-worker-{index}",
        )
        process.start()
        processes.append(process)
    _wait(processes, stop)
    complete, sizes = _merge(state, path, split)
    failed = [p.name for p in processes if p.exitcode not in (0, EXIT_STOPPED)]
    if complete and request.to.startswith("file:") and not request.dry_run:
        _join_parts(request.to, sizes)
    state.elapsed_seconds = elapsed_before + time.monotonic() - began
    state.save(path)
    if failed:
        raise ReplayWorkerError(
            f"{', '.join(failed)} failed (see the messages above); the others stopped "
            "at their last written batch"
        )
    if complete:
        for index in range(len(split)):
            worker_state_path(path, index).unlink(missing_ok=True)
    return complete


def start_method() -> str:
    """ "fork" while this process has no thread but its own (librdkafka's, an executor's:
    a forked child would inherit their locks in any state), else "spawn".

    A spawned worker imports the settings, the client and replay again: ~0.45 CPU-s per
    worker, as much as replaying 30,000 records; a forked one starts with all of it."""
    try:
        threads = len(os.listdir("/proc/self/task"))  # native threads too, not only Python's
    except OSError:
        return "spawn"
    return "fork" if threads == 1 else "spawn"


def _wait(processes: Sequence[BaseProcess], stop: threading.Event) -> None:
    told = False
    while any(p.is_alive() for p in processes):
        if stop.is_set() and not told:
            for process in processes:
                if process.pid is not None and process.is_alive():
                    os.kill(process.pid, signal.SIGTERM)
            told = True
        for process in processes:
            process.join(0.1)


def _merge(state: ReplayState, path: Path, split: list[list[int]]) -> tuple[bool, list[int]]:
    """The workers' counts into `state`; whether every share is complete, and the size
    each worker's part file had when it last saved (`_join_parts`)."""
    complete = True
    sizes = []
    for index, partitions in enumerate(split):
        worker_path = worker_state_path(path, index)
        if not worker_path.exists():  # the worker died before its first batch
            complete = False
            sizes.append(0)
            continue
        share = ReplayState.load(worker_path)
        for partition in partitions:
            state.tallies[partition] = share.tallies[partition]
        complete = complete and share.complete
        sizes.append(share.target_marker or 0)
    return complete, sizes


def _join_parts(target: str, sizes: list[int]) -> None:
    """The part files, in worker order, as the one file asked for: the first part
    becomes the file (a rename, nothing copied), the others are appended and removed
    one by one. `sizes` are the parts' sizes as their workers saved them, so a join cut
    short (a crash) is done again exactly: the file is cut to where the first part
    still there belongs, and the join goes on from it."""
    final = Path(target.removeprefix("file:"))
    first = part_path(target, 0)
    if first.exists():
        os.replace(first, final)
    with final.open("r+b") as out:
        position = sizes[0]
        for index in range(1, len(sizes)):
            part = part_path(target, index)
            if part.exists():
                out.truncate(position)
                out.seek(position)
                with part.open("rb") as stream:
                    _copy(stream, out)
                out.flush()
                # gone only once in the file: a kill before leaves it to append again
                part.unlink()
            position += sizes[index]


def _copy(source: BinaryIO, out: BinaryIO) -> None:
    """All of `source` appended to `out`, copied by the kernel where it can (a third of
    the CPU of copying through user space: the parts are the whole replay's output)."""
    out.flush()
    size = left = os.fstat(source.fileno()).st_size
    while left > 0:
        try:
            copied = os.copy_file_range(source.fileno(), out.fileno(), left)
        except OSError:
            if left < size:
                raise
            # a file system without it (EXDEV, ENOSYS, EINVAL): through user space
            shutil.copyfileobj(source, out, 8 * 1024 * 1024)
            return
        if copied == 0:
            raise OSError(f"{source.name}: {left} bytes short while joining the parts")
        left -= copied


def _recover_audit_store(settings: Settings) -> None:
    """The audit sink's start-up recovery, once, before any worker writes."""
    from sinks.registry import SinkNotConfigured, create_sink

    try:
        sink = create_sink("audit", settings)
    except SinkNotConfigured as exc:
        raise ReplayUsageError(f"--to audit: {exc}") from None

    async def recover() -> None:
        async with sink:
            pass

    asyncio.run(recover())


def _worker_main(
    settings: Settings,
    request: ReplayRequest,
    parent: ReplayState,
    parent_path: Path,
    index: int,
    partitions: list[int],
    workers: int,
) -> None:
    """In a worker process: replay one share, exit 0 (done), 130 (stopped) or 1."""
    import sys

    from replay.session import replay_range

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())  # a terminal's Ctrl-C reaches all
    coordinator = os.getppid()

    def watch_coordinator() -> None:
        # the coordinator killed: finish the batch and save, so --resume continues here
        while not stop.wait(0.5):
            if os.getppid() != coordinator:
                stop.set()

    threading.Thread(target=watch_coordinator, daemon=True).start()
    path = worker_state_path(parent_path, index)
    state = _worker_state(parent, path, partitions, request.resume)
    if state.complete:
        sys.exit(0)
    to = request.to
    if to.startswith("file:") and not request.dry_run:
        to = f"file:{part_path(to, index)}"
    share = replace(
        request,
        to=to,
        resume=request.resume and path.exists() and state.runs > 1,
        rate=request.rate / workers if request.rate else None,
    )
    progress = LineProgress(
        state.plan.expected_records,
        sum(t.read for t in state.tallies.values()),
        f"replay {state.plan.topic} (worker {index})",
        sys.stderr,
    )
    try:
        complete = replay_range(settings, share, state, path, stop, progress, recovered=True)
    except Exception as exc:
        print(f"replay worker {index} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
    sys.exit(0 if complete else EXIT_STOPPED)


def _worker_state(
    parent: ReplayState, path: Path, partitions: list[int], resume: bool
) -> ReplayState:
    if resume and path.exists():
        state = ReplayState.load(path)
        state.runs += 1
        return state
    plan = Plan(
        parent.plan.topic, tuple(r for r in parent.plan.ranges if r.partition in partitions)
    )
    tallies = {r.partition: PartitionTally(r.partition, r.start) for r in plan.ranges}
    return ReplayState(parent.fingerprint, parent.command, plan, tallies)
