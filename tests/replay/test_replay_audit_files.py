"""Replay into audit files (`replay.targets.auditfiles`): one open file per partition
between checkpoints, the position saved only once the files are durable, and a kill -9
between two checkpoints resumed without loss or duplicates."""

from __future__ import annotations

import io
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import fastavro
import pytest

from devenv import LocalKafka
from replay.session import ReplayRequest, run_replay
from replay.spec import ReplaySpec
from replay.targets.auditfiles import AuditFilesTarget
from replay.targets.factory import open_target
from sinks.audit.files import AuditFiles
from tests.replay.helpers import audit_files, fill_topic, settings_for, write_config
from tests.replay.test_replay_workers import audit_rows, comparable, resumed, vcstream
from vcstream.settings import Settings

pytestmark = pytest.mark.integration

RECORDS = 400  # over 4 partitions, every 25th poison: 384 events, 16 skipped


def settings_for_directory(directory: Path) -> Settings:
    return Settings(kafka={"bootstrapServers": "127.0.0.1:9"}, sinks=audit_files(directory))


def test_audit_files_backend_is_written_by_the_replay_itself(tmp_path: Path) -> None:
    settings = settings_for_directory(tmp_path / "audit")
    target = open_target("audit", "json", settings)
    try:
        assert isinstance(target, AuditFilesTarget)
    finally:
        target.close()


def test_a_replay_keeps_one_file_per_partition_across_batches(
    kafka: LocalKafka, topic_name: Callable[[str], str], tmp_path: Path
) -> None:
    topic = topic_name("audit-one-file")
    fill_topic(kafka, topic, RECORDS, partitions=2, poison_every=25)
    directory = tmp_path / "audit"
    settings = settings_for(kafka, sinks=audit_files(directory))
    # the rate makes batches of 100 records: at least 2 of each partition
    request = ReplayRequest(
        ReplaySpec(topic, from_beginning=True),
        "audit",
        rate=400,
        state_path=tmp_path / "state.json",
        progress_stream=io.StringIO(),
    )
    outcome = run_replay(settings, request)

    assert outcome.complete and outcome.report["totals"]["written"] == 384
    files = AuditFiles(directory).files()
    assert sorted(f.partition for f in files) == [0, 1]  # not a file per batch
    assert len(audit_rows(directory)) == 384
    seals = sorted((directory / "_seals").glob("*.seals"))
    assert [len(p.read_text().splitlines()) for p in seals] == [1, 1]


def _between_checkpoints(state: Path, audit: Path) -> bool:
    """A checkpoint was saved, and records after it sit in open (not durable) files."""
    if not state.exists() or not list(audit.glob("date=*/vcenter=*/*.avro")):
        return False
    return any(_records_in(path) > 0 for path in audit.rglob("*.avro.tmp"))


def _records_in(path: Path) -> int:
    """Records in the whole blocks of a file being written (0 while it has none)."""
    try:
        with path.open("rb") as stream:
            return sum(1 for _ in fastavro.reader(stream))
    except (OSError, ValueError, EOFError, StopIteration):
        return 0  # gone (rotated) or still only a header being written


def test_replay_into_audit_killed_between_checkpoints_resumes_without_loss_or_duplicates(
    kafka: LocalKafka, topic_name: Callable[[str], str], tmp_path: Path
) -> None:
    topic = topic_name("audit-kill")
    fill_topic(kafka, topic, RECORDS, partitions=4, poison_every=25)
    audit = tmp_path / "audit"
    # checkpoints every second (the store's rotateInterval, when shorter than the replay's)
    config = write_config(kafka, tmp_path / "vcstream.yaml", audit, rotateInterval="1s")
    state = tmp_path / "state.json"
    common = ["--topic", topic, "--from-beginning", "--to", "audit", "--state", str(state)]
    common += ["--report", str(tmp_path / "report.json")]

    first = vcstream(config, *common, "--rate", "40")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _between_checkpoints(state, audit):
        time.sleep(0.05)
    assert first.poll() is None, "the replay ended before it could be killed mid-way"
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    stored = audit_rows(audit)
    assert 0 < len(stored) < 384  # a checkpoint was made, the rest was in open files

    report = resumed(config, common, tmp_path / "report.json")
    totals = report["totals"]
    assert (totals["read"], totals["written"], totals["skipped"]) == (400, 384, 16)
    rows = audit_rows(audit)
    assert len(rows) == 384 and len(set(rows)) == 384  # nothing lost, nothing twice
    assert not list(audit.rglob("*.tmp"))
    verified = subprocess.run(
        [sys.executable, "-m", "cli", "audit", "verify", "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr

    whole_dir = tmp_path / "whole"
    settings = settings_for(kafka, sinks=audit_files(whole_dir / "audit"))
    whole = run_replay(
        settings,
        ReplayRequest(
            ReplaySpec(topic, from_beginning=True),
            "audit",
            state_path=tmp_path / "whole-state.json",
            progress_stream=io.StringIO(),
        ),
    )
    assert comparable(report) == comparable(whole.report)
    assert audit_rows(whole_dir / "audit") == rows


def test_a_durable_file_deleted_under_the_replay_stops_it_naming_the_file(
    tmp_path: Path,
) -> None:
    from dataclasses import replace

    from replay.batch import BatchChecker
    from sinks.audit.store import ChainBroken
    from tests.replay.helpers import RecordMessage
    from tests.replay.test_batch import base

    records = [replace(base(k), topic="t", partition=0, offset=k, timestamp_ms=k) for k in range(6)]
    checker = BatchChecker("t", lambda t: True, lines=False)
    target = AuditFilesTarget(settings_for_directory(tmp_path).sinks.audit)
    target.write(checker.check([RecordMessage(r) for r in records[:3]]).items)
    assert target.sync(force=True)
    [durable] = AuditFiles(tmp_path).files()
    durable.path.unlink()
    with pytest.raises(ChainBroken, match=re.escape(f"{durable.path.name}, the newest durable")):
        target.write(checker.check([RecordMessage(r) for r in records[3:]]).items)
    assert not target.sync()  # not due yet: nothing said durable between checkpoints
