"""Tampering with audit storage, on both backends: each way is reported by `audit verify`
with the partition and offsets, and the sink refuses to chain over a loss or a fork."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
import psycopg
import pytest
from prometheus_client import REGISTRY
from psycopg import sql

from schemas import avro
from schemas.record import KafkaRecord
from sinks import registry
from sinks.audit.anchors import committed_anchors
from sinks.audit.file_layout import read_file
from sinks.audit.files import AuditFiles
from sinks.audit.postgres import AuditTable
from sinks.audit.record import audit_record
from sinks.audit.store import AuditStore
from sinks.audit.verify import VerifyReport
from sinks.base import SinkEvent
from sinks.runtime import SinkRunner
from tests.sinks.helpers import (
    committed,
    ensure_topics_for,
    produce,
    run_until,
    settled,
    sink_settings,
    vm_records,
)
from vcstream.observability import Health

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 22, 13, 0, tzinfo=UTC)


class Backend:
    """One audit backend and a tamperer's hands on it."""

    def __init__(self, kind: str, tmp_path: Path, dsn: str) -> None:
        self.kind = kind
        self.directory = tmp_path / "audit"
        self.seals = tmp_path / "seals"  # apart from the data, as the docs advise
        self.dsn = dsn
        self.table = f"audit_{uuid.uuid4().hex[:10]}"
        self._saved = tmp_path / "saved"

    def section(self) -> dict[str, Any]:
        if self.kind == "files":
            files = {"directory": str(self.directory), "sealDirectory": str(self.seals)}
            return {"files": {**files, "rotateRecords": 4}}
        return {"backend": "postgres", "postgres": {"dsn": self.dsn, "table": self.table}}

    def store(self) -> AuditStore:
        if self.kind == "files":
            return AuditFiles(self.directory, seal_directory=self.seals, rotate_records=4)
        return AuditTable(self.dsn, self.table)

    def verify(self, anchors: Any = None) -> VerifyReport:
        async def run() -> VerifyReport:
            store = self.store()
            try:
                return await store.verify(anchors)
            finally:
                await store.close()

        return asyncio.run(run())

    def write(self, records: list[KafkaRecord], topic: str = "t") -> None:
        """Through the store, 4 records a batch (a file, or a transaction, each)."""

        async def run() -> None:
            store = self.store()
            try:
                head = await store.head(topic, 0)  # carries on, as the sink would
                for start in range(0, len(records), 4):
                    items = [
                        SinkEvent(None, KafkaRecord(r.value, r.key, r.headers, topic, 0, start + i))
                        for i, r in enumerate(records[start : start + 4])
                    ]
                    batch = [audit_record(item, NOW) for item in items]
                    head = await store.append(topic, 0, batch, head)
            finally:
                await store.close()

        asyncio.run(run())

    # -- the tamperer ------------------------------------------------------------------

    def execute(self, query: str, *params: Any) -> None:
        names = {"t": sql.Identifier(self.table), "saved": sql.Identifier(f"{self.table}_saved")}
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL(query).format(**names), params)

    def delete_from(self, first: int, last: int) -> None:
        if self.kind == "postgres":
            self.execute('DELETE FROM {t} WHERE "offset" BETWEEN %s AND %s', first, last)
            return
        for audit_file in AuditFiles(self.directory).files():
            if first <= audit_file.first and audit_file.last <= last:
                audit_file.path.unlink()

    def modify(self, offset: int) -> None:
        if self.kind == "postgres":
            self.execute(
                "UPDATE {t} SET value = convert_to(replace(convert_from(value, 'UTF8'), "
                "'powered on', 'powered off'), 'UTF8') WHERE \"offset\" = %s",
                offset,
            )
            return

        def change(records: list[dict[str, Any]]) -> None:
            for record in records:
                if record["offset"] == offset:
                    record["value"] = record["value"].replace(b"powered on", b"powered off")

        self._rewrite(offset, change)

    def swap(self, offset: int) -> None:
        """The record at `offset` and the next one trade places."""
        if self.kind == "postgres":
            self.execute('UPDATE {t} SET "offset" = -1 WHERE "offset" = %s', offset)
            self.execute('UPDATE {t} SET "offset" = %s WHERE "offset" = %s', offset, offset + 1)
            self.execute('UPDATE {t} SET "offset" = %s WHERE "offset" = -1', offset + 1)
            return

        def change(records: list[dict[str, Any]]) -> None:
            at = next(i for i, r in enumerate(records) if r["offset"] == offset)
            records[at], records[at + 1] = records[at + 1], records[at]

        self._rewrite(offset, change)

    def _rewrite(self, offset: int, change: Callable[[list[dict[str, Any]]], None]) -> None:
        for audit_file in AuditFiles(self.directory).files():
            if audit_file.first <= offset <= audit_file.last:
                records = list(read_file(audit_file.path))
                change(records)
                with audit_file.path.open("wb") as stream:
                    fastavro.writer(stream, avro.load("audit_record"), records)

    def save(self) -> None:
        """A copy of the data (not the seals), as a backup would take it."""
        if self.kind == "files":
            shutil.copytree(self.directory, self._saved)
        else:
            self.execute("CREATE TABLE {saved} AS SELECT * FROM {t}")

    def restore(self) -> None:
        """The data replaced by the older copy."""
        if self.kind == "files":
            shutil.rmtree(self.directory)
            shutil.copytree(self._saved, self.directory)
        else:
            self.execute("DELETE FROM {t}")
            self.execute("INSERT INTO {t} SELECT * FROM {saved}")


@pytest.fixture(params=["files", "postgres"])
def backend(request, tmp_path, postgres) -> Backend:
    return Backend(request.param, tmp_path, postgres.dsn)


def problems(report: VerifyReport) -> list[str]:
    return [str(p) for p in report.problems]


def row_or_file(backend: Backend, offset: int) -> str:
    """How verify names the place of a record."""
    return f"t/0/{offset}" if backend.kind == "postgres" else f"(offset {offset})"


# -- verify, on stored data --------------------------------------------------------------


def test_deleted_middle_file_or_rows_are_reported_with_the_offset_after_the_gap(backend):
    backend.write(vm_records(12))
    backend.delete_from(4, 7)

    found = problems(backend.verify())

    assert len(found) == 1 and found[0].startswith("deleted:"), found
    assert row_or_file(backend, 8) in found[0]


def test_deleted_newest_file_or_rows_are_found_by_the_seal_without_kafka(backend):
    backend.write(vm_records(12))
    backend.delete_from(8, 11)

    found = problems(backend.verify())

    assert found == [
        "deleted: t[0]: the sink stored up to offset 11 and sealed that; "
        "up to offset 7 is left (offsets 8..11 missing)"
    ]


def test_modified_record_is_reported_with_its_offset(backend):
    backend.write(vm_records(8))
    backend.modify(5)

    found = problems(backend.verify())

    assert len(found) == 1 and found[0].startswith("modified:"), found
    assert row_or_file(backend, 5) in found[0]


def test_reordered_pair_is_reported(backend):
    backend.write(vm_records(8))
    backend.swap(5)

    found = problems(backend.verify())

    reordered = [p for p in found if p.startswith("reordered:")]
    assert any(row_or_file(backend, 5) in p or row_or_file(backend, 6) in p for p in reordered)


def test_data_replaced_by_an_older_copy_is_reported_by_the_seal_and_the_anchor(backend):
    backend.write(vm_records(4))
    backend.save()
    backend.write(vm_records(8))  # the same partition, on: offsets 4..7 chained after 3
    backend.restore()

    found = problems(backend.verify())

    assert found == [
        "deleted: t[0]: the sink stored up to offset 7 and sealed that; "
        "up to offset 3 is left (offsets 4..7 missing)"
    ]


# -- the sink, running ------------------------------------------------------------------


def sink_over(backend: Backend, kafka: Any, topic: str, dlq: str) -> SinkRunner:
    # no retries: were a halted batch taken for a delivery failure, it would be
    # dead-lettered (and committed) at once, which the tests below would see
    section = {
        "topics": [topic],
        "batch": {"maxRecords": 4, "maxWait": "PT0.05S"},
        "delivery": {"retry": 0},
    }
    settings = sink_settings(kafka.bootstrap_servers, "audit", dlq, **section, **backend.section())
    ensure_topics_for(kafka.bootstrap_servers, [dlq])
    return SinkRunner(
        registry.create_sink("audit", settings),
        settings.kafka,
        topics=[topic],
        group_id="vcstream-sink-audit",
        dead_letter_topic=dlq,
        health=Health(),
    )


def health_of(runner: SinkRunner) -> Health:
    assert runner.health is not None
    return runner.health


def halted(runner: SinkRunner) -> str | None:
    [check] = runner.sink.health_checks().values()
    return check()


def test_sink_halts_a_partition_whose_newest_file_or_rows_vanish_while_it_runs(
    backend, kafka, topic_name
):
    topic, dlq = topic_name("audit"), topic_name("dlq")
    produce(kafka.bootstrap_servers, topic, vm_records(8))
    runner = sink_over(backend, kafka, topic, dlq)
    tampered: list[bool] = []

    def tamper_then_halt() -> bool:
        if not tampered and runner.report.delivered >= 8:  # durable: closed files, rows
            backend.delete_from(4, 7)  # the newest, durable and committed
            produce(kafka.bootstrap_servers, topic, vm_records(4, start=9))
            tampered.append(True)
        return halted(runner) is not None

    run_until(runner, tamper_then_halt)

    healthy, checks = health_of(runner).report()  # what /healthz answers
    assert not healthy and f"{topic}[0] halted" in checks["audit-chain:audit"]
    reason = halted(runner)
    assert reason is not None and f"{topic}[0] halted" in reason
    assert (runner.report.delivered, runner.report.dead_lettered) == (8, 0)
    sample = REGISTRY.get_sample_value("vcstream_sink_audit_halted_partitions", {"sink": "audit"})
    assert sample == 1
    assert committed(kafka.bootstrap_servers, "vcstream-sink-audit", topic) == 8  # no further
    found = problems(backend.verify())
    assert any(p.startswith(f"deleted: {topic}[0]") and "offsets 4..7 missing" in p for p in found)


@pytest.mark.parametrize("tamper", ["older-copy", "forked"])
def test_restarted_sink_refuses_storage_that_does_not_hold_its_committed_head(
    backend, kafka, topic_name, tamper
):
    topic, dlq = topic_name("audit"), topic_name("dlq")
    produce(kafka.bootstrap_servers, topic, vm_records(4))
    runner = sink_over(backend, kafka, topic, dlq)
    run_until(runner, settled(runner, 4))  # then stops: files closed, offsets committed
    if tamper == "older-copy":
        backend.save()
    produce(kafka.bootstrap_servers, topic, vm_records(4, start=5))
    runner = sink_over(backend, kafka, topic, dlq)
    run_until(runner, settled(runner, 4))
    assert committed(kafka.bootstrap_servers, "vcstream-sink-audit", topic) == 8
    if tamper == "older-copy":
        backend.restore()  # offsets 4..7 gone, the seals and Kafka remember them
    else:  # another chain of the same offsets (written by something else)
        backend.delete_from(0, 7)
        backend.write(vm_records(8, start=100), topic=topic)

    produce(kafka.bootstrap_servers, topic, vm_records(4, start=9))
    runner = sink_over(backend, kafka, topic, dlq)
    run_until(runner, lambda: halted(runner) is not None)

    reason = halted(runner)
    assert reason is not None and "the committed chain head is offset 7" in reason
    assert (runner.report.delivered, runner.report.dead_lettered) == (0, 0)
    assert committed(kafka.bootstrap_servers, "vcstream-sink-audit", topic) == 8
    settings = sink_settings(kafka.bootstrap_servers, "audit", dlq)
    anchors = committed_anchors(settings.kafka, "vcstream-sink-audit", [topic])
    found = problems(backend.verify(anchors))
    expected = "deleted:" if tamper == "older-copy" else "modified:"
    assert any(p.startswith(expected) and ("offset 7" in p or "/7" in p) for p in found), found


def test_untouched_storage_verifies_against_its_seals_and_anchors(backend, kafka, topic_name):
    """The same setup untouched: nothing halted, everything verifies."""
    topic, dlq = topic_name("audit"), topic_name("dlq")
    produce(kafka.bootstrap_servers, topic, vm_records(10))
    runner = sink_over(backend, kafka, topic, dlq)
    run_until(runner, settled(runner, 10))
    assert halted(runner) is None
    settings = sink_settings(kafka.bootstrap_servers, "audit", dlq)
    anchors = committed_anchors(settings.kafka, "vcstream-sink-audit", [topic])
    report = backend.verify(anchors)
    assert report.ok and report.records == 10, problems(report)
