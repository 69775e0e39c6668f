"""Replay into audit storage (files and PostgreSQL) through the audit sink, and
`vcstream audit verify --against-topic` holding the store to the topic."""

from __future__ import annotations

import io
import json
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastavro
import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner, Result

from cli import app
from devenv import LocalKafka
from replay.audit_check import range_spec, verify_audit_store
from replay.errors import ReplayUsageError
from replay.session import ReplayOutcome, ReplayRequest, run_replay
from replay.spec import OffsetBound, ReplaySpec
from schemas import avro
from sinks.audit.file_layout import read_file
from sinks.audit.files import AuditFiles
from tests.replay.helpers import fill_topic, settings_for
from vcstream.settings import Settings

pytestmark = pytest.mark.integration

RECORDS = 40  # over 2 partitions; every 10th is poison, so 36 events are stored


def audit_section(backend: str, tmp_path: Path, postgres: Any) -> dict[str, Any]:
    if backend == "files":
        return {"backend": "files", "files": {"directory": str(tmp_path / "audit")}}
    table = f"audit_{uuid.uuid4().hex[:10]}"
    return {"backend": "postgres", "postgres": {"dsn": postgres.dsn, "table": table}}


@pytest.fixture(params=["files", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_postgres(backend: str, request: pytest.FixtureRequest) -> Any:
    """The PostgreSQL server, started only for the postgres backend."""
    return request.getfixturevalue("postgres") if backend == "postgres" else None


def replay_into_audit(settings: Settings, spec: ReplaySpec, tmp_path: Path) -> ReplayOutcome:
    request = ReplayRequest(
        spec, "audit", state_path=tmp_path / "state.json", progress_stream=io.StringIO()
    )
    return run_replay(settings, request)


def stored_rows(settings: Settings) -> list[tuple[int, int, str]]:
    """(partition, offset, id) of every stored record, read straight from the store."""
    audit = settings.sinks.audit
    if audit.backend == "files":
        store = AuditFiles(audit.files.directory)
        return sorted(
            (r["partition"], r["offset"], r["id"]) for f in store.files() for r in read_file(f.path)
        )
    assert audit.postgres is not None
    query = sql.SQL('SELECT partition, "offset", id FROM {} ORDER BY 1, 2').format(
        sql.Identifier(audit.postgres.table)
    )
    with psycopg.connect(audit.postgres.dsn.get_secret_value()) as conn:
        return [tuple(row) for row in conn.execute(query).fetchall()]


def test_replay_into_audit_stores_the_range_once_and_verify_agrees_with_the_topic(
    kafka: LocalKafka,
    topic_name: Callable[[str], str],
    tmp_path: Path,
    backend: str,
    store_postgres: Any,
) -> None:
    topic = topic_name("audit")
    fill_topic(kafka, topic, RECORDS, partitions=2, poison_every=10)
    settings = settings_for(
        kafka, sinks={"audit": audit_section(backend, tmp_path, store_postgres)}
    )
    spec = ReplaySpec(topic, from_beginning=True)

    first = replay_into_audit(settings, spec, tmp_path)
    rows = stored_rows(settings)
    second = replay_into_audit(settings, spec, tmp_path)

    totals = first.report["totals"]
    assert (totals["read"], totals["written"], totals["skipped"]) == (40, 36, 4)
    assert len(rows) == 36 and len(set(rows)) == 36
    assert stored_rows(settings) == rows  # the second replay stored nothing again
    assert second.report["checksum"] == first.report["checksum"]
    verdict = verify_audit_store(settings, spec)
    assert verdict["ok"], verdict
    assert sum(p["presentOnce"] for p in verdict["partitions"]) == 36
    # the store's checksum over (partition, offset, id) is the replay report's
    assert verdict["checksum"] == first.report["checksum"]


def test_partial_replay_into_audit_verifies_for_its_range_and_not_beyond(
    kafka: LocalKafka,
    topic_name: Callable[[str], str],
    tmp_path: Path,
    backend: str,
    store_postgres: Any,
) -> None:
    topic = topic_name("part")
    fill_topic(kafka, topic, 20, partitions=1)
    settings = settings_for(
        kafka, sinks={"audit": audit_section(backend, tmp_path, store_postgres)}
    )
    window = ReplaySpec(topic, from_offsets=(OffsetBound(5),), to_offsets=(OffsetBound(12),))
    outcome = replay_into_audit(settings, window, tmp_path)

    assert outcome.report["totals"]["written"] == 8
    assert [offset for _, offset, _ in stored_rows(settings)] == list(range(5, 13))
    assert verify_audit_store(settings, range_spec(topic, ["5"], ["12"]))["ok"]
    whole = verify_audit_store(settings, range_spec(topic))
    (partition,) = whole["partitions"]
    assert not whole["ok"]
    assert partition["missing"]["offsets"] == [*range(5), *range(13, 20)]


# -- the command: vcstream audit verify --against-topic ----------------------------------


def write_config(tmp_path: Path, settings: Settings, section: dict[str, Any]) -> Path:
    config = tmp_path / "vcstream.yaml"
    body = {
        "kafka": {"bootstrapServers": settings.kafka.bootstrap_servers},
        "sinks": {"audit": section},
        "metrics": {"enabled": False},
    }
    config.write_text(json.dumps(body))
    return config


def verify_cli(config: Path, topic: str, *extra: str) -> Result:
    args = ["audit", "verify", "-c", str(config), "--against-topic", topic, *extra]
    return CliRunner().invoke(app, args)


@pytest.fixture
def stored_topic(
    kafka: LocalKafka, topic_name: Callable[[str], str], tmp_path: Path, backend: str, request: Any
) -> tuple[Path, str, Settings]:
    """A topic of 12 events in one partition, replayed whole into the audit store."""
    pg = request.getfixturevalue("postgres") if backend == "postgres" else None
    topic = topic_name("verify")
    fill_topic(kafka, topic, 12, partitions=1)
    section = audit_section(backend, tmp_path, pg)
    settings = settings_for(kafka, sinks={"audit": section})
    replay_into_audit(settings, ReplaySpec(topic, from_beginning=True), tmp_path)
    return write_config(tmp_path, settings, section), topic, settings


def test_verify_against_topic_passes_on_a_complete_store(
    stored_topic: tuple[Path, str, Settings], tmp_path: Path
) -> None:
    config, topic, _ = stored_topic
    report = tmp_path / "verify.json"
    result = verify_cli(config, topic, "--from", "0", "--to", "11", "--report", str(report))
    assert result.exit_code == 0, result.output
    assert "OK" in result.output and "present once 12" in result.output
    assert json.loads(report.read_text())["ok"] is True


def tamper(settings: Settings, offset: int, change: Callable[[dict[str, Any]], Any]) -> None:
    """Edit (or with `change` returning None, delete) the stored record at `offset`."""
    audit = settings.sinks.audit
    if audit.backend == "postgres":
        assert audit.postgres is not None
        table = sql.Identifier(audit.postgres.table)
        with psycopg.connect(audit.postgres.dsn.get_secret_value(), autocommit=True) as conn:
            row = {"id": "kept"}
            if change(row) is None:
                conn.execute(sql.SQL('DELETE FROM {} WHERE "offset" = %s').format(table), (offset,))
            else:
                conn.execute(
                    sql.SQL('UPDATE {} SET id = %s WHERE "offset" = %s').format(table),
                    (row["id"], offset),
                )
        return
    store = AuditFiles(audit.files.directory)
    for audit_file in store.files():
        records = list(read_file(audit_file.path))
        if any(r["offset"] == offset for r in records):
            kept = [r for r in records if r["offset"] != offset or change(r) is not None]
            with audit_file.path.open("wb") as stream:
                fastavro.writer(stream, avro.load("audit_record"), kept)


def test_verify_against_topic_names_a_deleted_record(
    stored_topic: tuple[Path, str, Settings],
) -> None:
    config, topic, settings = stored_topic
    tamper(settings, 4, lambda record: None)
    result = verify_cli(config, topic)
    assert result.exit_code == 1
    assert "MISMATCH" in result.output and "missing: 4" in result.output


def test_verify_against_topic_names_a_record_stored_under_another_id(
    stored_topic: tuple[Path, str, Settings],
) -> None:
    config, topic, settings = stored_topic
    tamper(settings, 7, lambda record: record.update(id=str(uuid.uuid4())) or record)
    result = verify_cli(config, topic)
    assert result.exit_code == 1
    assert "wrongId: 7" in result.output and "missing 0," in result.output


def test_verify_against_topic_names_a_record_stored_twice(
    kafka: LocalKafka, topic_name: Callable[[str], str], tmp_path: Path
) -> None:
    # only files can hold an offset twice: PostgreSQL's primary key refuses it
    topic = topic_name("twice")
    fill_topic(kafka, topic, 12, partitions=1)
    section = audit_section("files", tmp_path, None)
    settings = settings_for(kafka, sinks={"audit": section})
    replay_into_audit(settings, ReplaySpec(topic, from_offsets=(OffsetBound(0),)), tmp_path)
    (stored,) = AuditFiles(settings.sinks.audit.files.directory).files()
    copy = stored.path.parent.parent.parent / "date=2030-01-01" / stored.path.parent.name
    copy.mkdir(parents=True)
    shutil.copy(stored.path, copy / stored.path.name)

    result = verify_cli(write_config(tmp_path, settings, section), topic, "--from", "0:3")
    assert result.exit_code == 1
    assert "duplicated: 3, 4, 5, 6, 7, 8, 9, 10, 11" in result.output


def test_verify_against_topic_reports_an_unreadable_audit_file(
    kafka: LocalKafka, topic_name: Callable[[str], str], tmp_path: Path
) -> None:
    topic = topic_name("corrupt")
    fill_topic(kafka, topic, 6, partitions=1)
    section = audit_section("files", tmp_path, None)
    settings = settings_for(kafka, sinks={"audit": section})
    replay_into_audit(settings, ReplaySpec(topic, from_beginning=True), tmp_path)
    (stored,) = AuditFiles(settings.sinks.audit.files.directory).files()
    stored.path.write_bytes(b"Obj\x01garbage")

    result = verify_cli(write_config(tmp_path, settings, section), topic)
    assert result.exit_code == 1
    assert "unreadable:" in result.output and stored.path.name in result.output
    assert "missing: 0, 1, 2, 3, 4, 5" in result.output


def test_verify_against_topic_rejects_a_range_the_topic_does_not_hold(
    kafka: LocalKafka, topic_name: Callable[[str], str], tmp_path: Path
) -> None:
    topic = topic_name("range")
    fill_topic(kafka, topic, 5, partitions=1)
    section = audit_section("files", tmp_path, None)
    config = write_config(tmp_path, settings_for(kafka), section)

    beyond = verify_cli(config, topic, "--from", "9")
    assert beyond.exit_code == 2 and "offsets 0..4" in beyond.output
    missing = verify_cli(config, "no.such.topic")
    assert missing.exit_code == 2 and "does not exist" in missing.output
    garbled = verify_cli(config, topic, "--to", "yesterday")
    assert garbled.exit_code == 2 and "expected an offset" in garbled.output
    loose = CliRunner().invoke(app, ["audit", "verify", "-c", str(config), "--from", "3"])
    assert loose.exit_code == 2 and "need --against-topic" in loose.output


def test_range_words_mix_offsets_and_times_only_as_documented() -> None:
    by_time = range_spec("t", ["2026-01-01T00:00:00Z"], ["2026-01-02"])
    assert by_time.from_time is not None and by_time.to_time is not None
    per_partition = range_spec("t", ["0:5", "1:7"], ["0:9"])
    assert per_partition.from_offsets == (OffsetBound(5, 0), OffsetBound(7, 1))
    with pytest.raises(ReplayUsageError, match="give one time"):
        range_spec("t", ["2026-01-01T00:00:00Z", "0:5"])
