"""Deleting a partition's newest audit records leaves a valid, shorter chain; the chain
head the sink committed to Kafka with its offset betrays it, for both backends."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner

from cli import app
from sinks.audit.anchors import Anchor, committed_anchors
from sinks.audit.files import AuditFiles
from sinks.audit.postgres import AuditTable
from sinks.audit.verify import verify_files, verify_table
from tests.sinks.helpers import make_runner, produce, run_until, settled, sink_settings, vm_records
from vcstream.settings import Settings

RECORDS = 12


def run_audit_sink(kafka: Any, topic: str, dlq: str, **backend: Any) -> Settings:
    """The audit sink over `topic` until every record is stored; its settings."""
    produce(kafka.bootstrap_servers, topic, vm_records(RECORDS))
    section = {"topics": [topic], "batch": {"maxRecords": 4, "maxWait": "PT0.05S"}, **backend}
    settings = sink_settings(kafka.bootstrap_servers, "audit", dlq, **section)
    runner = make_runner("audit", settings)
    run_until(runner, settled(runner, RECORDS))
    return settings


def anchors_of(settings: Settings, topic: str) -> dict[tuple[str, int], Anchor]:
    return committed_anchors(settings.kafka, "vcstream-sink-audit", [topic])


@pytest.mark.integration
def test_deleting_the_newest_audit_file_fails_verify_against_the_committed_head(
    kafka, topic_name, tmp_path
):
    topic = topic_name("audit")
    directory = tmp_path / "audit"
    settings = run_audit_sink(kafka, topic, topic_name("dlq"), files={"directory": str(directory)})
    store = AuditFiles(directory)
    anchors = anchors_of(settings, topic)
    assert anchors == {(topic, 0): asyncio.run(store.head(topic, 0))}
    assert verify_files(store, anchors).ok

    newest = max(store.files(topic, 0), key=lambda f: f.last)
    newest.path.unlink()  # what the hash chain alone cannot see
    shutil.rmtree(directory / "_seals")  # nor, with the seals gone too, the store alone
    assert verify_files(AuditFiles(directory)).ok

    report = verify_files(AuditFiles(directory), anchors)
    assert [(p.kind, p.where) for p in report.problems] == [("deleted", f"{topic}[0]")]
    assert f"up to offset {RECORDS - 1}" in report.problems[0].detail


@pytest.mark.integration
def test_deleting_the_newest_audit_rows_fails_verify_against_the_committed_head(
    kafka, postgres, topic_name, tmp_path
):
    topic, table = topic_name("audit"), f"audit_{uuid.uuid4().hex[:10]}"
    backend = {"backend": "postgres", "postgres": {"dsn": postgres.dsn, "table": table}}
    settings = run_audit_sink(kafka, topic, topic_name("dlq"), **backend)
    anchors = anchors_of(settings, topic)
    assert verify(postgres.dsn, table, anchors).ok

    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL('DELETE FROM {} WHERE "offset" >= 9').format(sql.Identifier(table)))
        conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(f"{table}_seals")))
    assert verify(postgres.dsn, table, {}).ok  # a shorter chain, still valid, no seals

    report = verify(postgres.dsn, table, anchors)
    assert [(p.kind, p.where) for p in report.problems] == [("deleted", f"{topic}[0]")]
    assert "up to offset 8 is left" in report.problems[0].detail

    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))
    report = verify(postgres.dsn, table, anchors)
    assert [(p.kind, p.detail.endswith("nothing is left")) for p in report.problems] == [
        ("deleted", True)
    ]


def verify(dsn: str, table_name: str, anchors: dict[tuple[str, int], Anchor]) -> Any:
    async def run() -> Any:
        table = AuditTable(dsn, table_name)
        try:
            return await verify_table(table, anchors)
        finally:
            await table.close()

    return asyncio.run(run())


@pytest.mark.integration
def test_verify_command_checks_the_committed_heads(kafka, topic_name, tmp_path):
    topic = topic_name("audit")
    directory = tmp_path / "audit"
    run_audit_sink(kafka, topic, topic_name("dlq"), files={"directory": str(directory)})
    config = write_config(tmp_path, kafka.bootstrap_servers, topic, directory)
    assert CliRunner().invoke(app, ["audit", "verify", "-c", config]).exit_code == 0

    newest = max(AuditFiles(directory).files(topic, 0), key=lambda f: f.last)
    newest.path.unlink()
    result = CliRunner().invoke(app, ["audit", "verify", "-c", config])

    assert result.exit_code == 1
    assert f"deleted: {topic}[0]: the sink stored up to offset {RECORDS - 1}" in result.output


def test_verify_command_warns_when_kafka_cannot_be_read(tmp_path):
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    config = write_config(tmp_path, f"127.0.0.1:{port}", "audit-topic", tmp_path / "audit")

    result = CliRunner().invoke(app, ["audit", "verify", "-c", config])

    assert result.exit_code == 0  # the storage itself was checked, and is intact
    assert "warning: chain heads not checked" in result.output
    assert "group vcstream-sink-audit" in result.output


def test_anchor_metadata_round_trips_and_ignores_other_writers():
    anchor = Anchor(41, "ab" * 32)
    assert Anchor.parse(anchor.text()) == anchor
    assert Anchor.parse("") is None
    assert Anchor.parse("some other tool's metadata") is None
    assert Anchor.parse("vcstream-audit-head:x:abc") is None


def write_config(tmp_path: Path, bootstrap: str, topic: str, directory: Path) -> str:
    path = tmp_path / "vcstream.yaml"
    audit = {"backend": "files", "files": {"directory": str(directory)}, "topics": [topic]}
    config = {
        "kafka": {"bootstrapServers": bootstrap},
        "sinks": {"audit": audit},
        "metrics": {"enabled": False},
    }
    path.write_text(json.dumps(config))
    return str(path)
