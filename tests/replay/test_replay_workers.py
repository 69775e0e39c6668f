"""`--workers N`: the report, the file and the audit store are those of one process, a
kill of every process mid-replay is resumed without loss or duplicates, and targets
that cannot take several writers are refused with the reason."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devenv import LocalKafka
from replay.errors import ReplayUsageError
from replay.plan import PartitionRange, Plan
from replay.session import ReplayRequest, run_replay
from replay.spec import ReplaySpec
from replay.workers import ReplayWorkerError, _join_parts, check_workers, part_path, shares
from sinks.audit.file_layout import read_file
from sinks.audit.files import AuditFiles
from tests.replay.helpers import audit_files, fill_topic, settings_for, write_config
from vcstream.settings import Settings

RECORDS = 400  # over 4 partitions, every 25th poison: 384 events, 16 skipped


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k not in ("run", "target")}


def lines(path: Path) -> list[tuple[int, int, str]]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return sorted((r["partition"], r["offset"], r["event"]["id"]) for r in rows)


def audit_rows(directory: Path) -> list[tuple[int, int, str]]:
    store = AuditFiles(directory)
    return sorted(
        (r["partition"], r["offset"], r["id"]) for f in store.files() for r in read_file(f.path)
    )


def replay(settings: Settings, topic: str, to: str, workers: int, tmp_path: Path) -> Any:
    request = ReplayRequest(
        ReplaySpec(topic, from_beginning=True),
        to,
        state_path=tmp_path / f"state-{workers}-{to[:4]}.json",
        progress_stream=io.StringIO(),
        workers=workers,
    )
    return run_replay(settings, request)


@pytest.mark.integration
def test_two_workers_give_one_process_report_file_and_audit_store(
    kafka: LocalKafka, topic_name: Callable[[str], str], tmp_path: Path
) -> None:
    topic = topic_name("workers")
    fill_topic(kafka, topic, RECORDS, partitions=4, poison_every=25)
    one_dir, two_dir = tmp_path / "audit-1", tmp_path / "audit-2"
    results = {}
    for workers, directory in ((1, one_dir), (2, two_dir)):
        settings = settings_for(kafka, sinks=audit_files(directory))
        to_file = replay(
            settings, topic, f"file:{tmp_path / f'{workers}.jsonl'}", workers, tmp_path
        )
        to_audit = replay(settings, topic, "audit", workers, tmp_path)
        results[workers] = (to_file, to_audit)

    for index in (0, 1):
        one, two = results[1][index], results[2][index]
        assert one.complete and two.complete
        assert comparable(two.report) == comparable(one.report)
    totals = results[2][0].report["totals"]
    assert (totals["read"], totals["written"], totals["skipped"]) == (400, 384, 16)
    assert lines(tmp_path / "2.jsonl") == lines(tmp_path / "1.jsonl")
    assert len(set(lines(tmp_path / "2.jsonl"))) == 384
    assert audit_rows(two_dir) == audit_rows(one_dir) and len(audit_rows(two_dir)) == 384
    assert not list(tmp_path.glob("*.part-*")) and not list(tmp_path.glob("*.worker-*"))


def resumed(config: Path, args: list[str], report: Path) -> dict[str, Any]:
    """The interrupted command run again with --resume to its end: its report."""
    second = vcstream(config, *args, "--resume")
    _, stderr = second.communicate(timeout=120)
    assert second.returncode == 0, stderr
    result: dict[str, Any] = json.loads(report.read_text())
    assert result["run"]["runs"] == 2
    return result


def vcstream(config: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "XDG_STATE_HOME": str(config.parent / "state")}
    return subprocess.Popen(
        [sys.executable, "-m", "cli", "replay", "--config", str(config), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # so the test can kill the coordinator and its workers
    )


@pytest.mark.integration
@pytest.mark.parametrize("target", ["file", "audit"])
def test_replay_with_workers_killed_with_sigkill_resumes_without_loss_or_duplicates(
    kafka: LocalKafka, topic_name: Callable[[str], str], tmp_path: Path, target: str
) -> None:
    topic = topic_name("workers-kill")
    fill_topic(kafka, topic, RECORDS, partitions=4, poison_every=25)
    audit = tmp_path / "audit"
    config = write_config(kafka, tmp_path / "vcstream.yaml", audit)
    out = tmp_path / "out.jsonl"
    to = f"file:{out}" if target == "file" else "audit"
    common = ["--topic", topic, "--from-beginning", "--to", to, "--workers", "2"]
    common += ["--report", str(tmp_path / "report.json")]

    first = vcstream(config, *common, "--rate", "40")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _progressed(tmp_path, out, audit, target):
        time.sleep(0.1)
    os.killpg(first.pid, signal.SIGKILL)  # the coordinator and both workers, mid-batch
    first.wait(10)

    report = resumed(config, common, tmp_path / "report.json")
    totals = report["totals"]
    assert (totals["read"], totals["written"], totals["skipped"]) == (400, 384, 16)
    rows = lines(out) if target == "file" else audit_rows(audit)
    assert len(rows) == 384 and len(set(rows)) == 384  # nothing lost, nothing twice

    whole_dir = tmp_path / "whole"
    whole_dir.mkdir()
    settings = settings_for(kafka, sinks=audit_files(whole_dir / "audit"))
    whole_to = f"file:{whole_dir / 'out.jsonl'}" if target == "file" else "audit"
    whole = replay(settings, topic, whole_to, 1, whole_dir)
    assert comparable(report) == comparable(whole.report)


def _progressed(tmp_path: Path, out: Path, audit: Path, target: str) -> bool:
    if target == "file":
        return any(p.stat().st_size > 0 for p in tmp_path.glob("out.jsonl.part-*"))
    return len(list(audit.glob("date=*/vcenter=*/*.avro"))) >= 2


@pytest.mark.integration
def test_a_failing_worker_fails_the_replay_and_says_which(
    kafka: LocalKafka, topic_name: Callable[[str], str], tmp_path: Path
) -> None:
    topic = topic_name("workers-fail")
    fill_topic(kafka, topic, 20, partitions=2)
    settings = settings_for(kafka)
    # the part files cannot be created: every worker fails at its first write
    with pytest.raises(ReplayWorkerError, match="replay-worker-0"):
        replay(settings, topic, f"file:{tmp_path / 'missing' / 'out.jsonl'}", 2, tmp_path)


@pytest.mark.parametrize(
    ("to", "fmt", "workers", "reason"),
    [
        ("stdout", "json", 2, "cannot share one stream"),
        ("file:x.avro", "avro", 2, "one Avro container file takes one writer"),
        ("knative", "json", 2, "N times the configured rate"),
        ("slack", "json", 3, "N times the configured rate"),
        ("audit", "json", 0, "--workers 0: expected 1..64"),
    ],
)
def test_workers_are_refused_where_the_target_takes_one_writer(
    to: str, fmt: Any, workers: int, reason: str
) -> None:
    request = ReplayRequest(ReplaySpec("t", from_beginning=True), to, fmt, workers=workers)
    with pytest.raises(ReplayUsageError, match=reason):
        check_workers(request)


def test_shares_balance_records_and_leave_out_empty_ranges() -> None:
    plan = Plan(
        "t",
        (
            PartitionRange(0, 0, 100),
            PartitionRange(1, 0, 60),
            PartitionRange(2, 0, 50),
            PartitionRange(3, 5, 5),
            PartitionRange(4, 0, 10),
        ),
    )
    assert shares(plan, 2) == [[0, 4], [1, 2]]  # 110 records each
    assert shares(plan, 8) == [[0], [1], [2], [4]]


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("", "fork"),  # the CLI's coordinator: replay's imports, no thread
        ("import threading; threading.Thread(target=threading.Event().wait).start()", "spawn"),
        # a thread Python does not know of: librdkafka's, of a client still alive
        ("import confluent_kafka; p = confluent_kafka.Producer({})", "spawn"),
    ],
    ids=["alone", "python-thread", "librdkafka-threads"],
)
def test_workers_are_forked_only_from_a_process_without_other_threads(
    code: str, expected: str
) -> None:
    script = f"{code}\nfrom replay.workers import start_method\nprint(start_method(), flush=True)"
    script += "\nimport os; os._exit(0)"  # not waiting for the thread
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == expected


def _parts(target: str, contents: list[bytes]) -> list[int]:
    for index, content in enumerate(contents):
        part_path(target, index).write_bytes(content)
    return [len(content) for content in contents]


def test_parts_are_joined_in_worker_order_the_first_renamed(tmp_path: Path) -> None:
    target = f"file:{tmp_path / 'out.jsonl'}"
    contents = [b"a\n" * 3, b"", b"b\n" * 2, b"c\n"]
    sizes = _parts(target, contents)
    first = part_path(target, 0).stat().st_ino
    _join_parts(target, sizes)
    final = tmp_path / "out.jsonl"
    assert final.read_bytes() == b"".join(contents)
    assert final.stat().st_ino == first  # renamed, not copied
    assert not list(tmp_path.glob("*.part-*"))


@pytest.mark.parametrize("appended", [0, 1, 2])
def test_a_join_cut_short_is_done_again_exactly(tmp_path: Path, appended: int) -> None:
    """A crash during the join leaves the file with the parts appended before it (the
    one being appended, half) and the parts not yet removed: --resume joins again."""
    target = f"file:{tmp_path / 'out.jsonl'}"
    contents = [b"first\n" * 4, b"second\n" * 3, b"third\n" * 5]
    sizes = _parts(target, contents)
    final = tmp_path / "out.jsonl"
    # as the crash left it: part 0 renamed, `appended` parts appended and removed, and
    # half of the next one appended
    part_path(target, 0).rename(final)
    with final.open("ab") as out:
        for index in range(1, 1 + appended):
            out.write(contents[index])
            part_path(target, index).unlink()
        if 1 + appended < len(contents):
            out.write(contents[1 + appended][:5])
    _join_parts(target, sizes)
    assert final.read_bytes() == b"".join(contents)
    assert not list(tmp_path.glob("*.part-*"))
