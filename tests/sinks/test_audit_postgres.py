"""The audit sink's PostgreSQL backend against a real server: once-only rows, restarts,
tamper evidence and query."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner

from cli import app
from sinks.audit.postgres import AuditTable
from sinks.audit.verify import verify_table
from tests.sinks.helpers import make_runner, produce, run_until, settled, sink_settings, vm_records

pytestmark = pytest.mark.integration


@pytest.fixture
def table() -> str:
    return f"audit_{uuid.uuid4().hex[:10]}"


def audit_section(postgres: Any, table: str, topic: str, **extra: Any) -> dict[str, Any]:
    return {
        "backend": "postgres",
        "postgres": {"dsn": postgres.dsn, "table": table},
        "topics": [topic],
        "batch": {"maxRecords": 5, "maxWait": "PT0.05S"},
        "delivery": {"backoffDelay": "PT0.1S", "retry": 30, "backoffPolicy": "linear"},
        **extra,
    }


def execute(dsn: str, query: sql.Composed | sql.SQL, params: tuple[Any, ...] = ()) -> list[Any]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cursor = conn.execute(query, params)
        return cursor.fetchall() if cursor.description else []


def config_file(tmp_path: Path, postgres: Any, table: str, kafka: Any) -> str:
    path = tmp_path / "vcstream.yaml"
    section = {"backend": "postgres", "postgres": {"dsn": postgres.dsn, "table": table}}
    kafka_section = {"bootstrapServers": kafka.bootstrap_servers}  # verify reads commits too
    config = {"kafka": kafka_section, "sinks": {"audit": section}, "metrics": {"enabled": False}}
    path.write_text(json.dumps(config))
    return str(path)


def test_postgres_audit_stores_each_record_once_and_verifies(kafka, postgres, topic_name, table):
    topic, dlq = topic_name("audit"), topic_name("dlq")
    produce(kafka.bootstrap_servers, topic, vm_records(12), partitions=3)  # concurrent batches
    for group in ("first", "second"):  # the second group re-delivers every record
        settings = sink_settings(
            kafka.bootstrap_servers,
            "audit",
            dlq,
            groupId=group,
            **audit_section(postgres, table, topic),
        )
        runner = make_runner("audit", settings)
        run_until(runner, settled(runner, 12))

    rows = execute(
        postgres.dsn,
        sql.SQL('SELECT partition, "offset" FROM {} ORDER BY 1, 2').format(sql.Identifier(table)),
    )
    by_partition: dict[int, list[int]] = {}
    for partition, offset in rows:
        by_partition.setdefault(partition, []).append(offset)
    assert len(rows) == 12  # none lost, none twice
    assert all(offsets == list(range(len(offsets))) for offsets in by_partition.values())
    report = asyncio.run(verify_table(AuditTable(postgres.dsn, table)))
    assert report.ok and report.records == 12
    indexes = execute(
        postgres.dsn, sql.SQL("SELECT indexname FROM pg_indexes WHERE tablename = %s"), (table,)
    )
    assert {f"{table}_{s}_idx" for s in ("time", "type", "entity", "vcenter")} <= {
        i[0] for i in indexes
    }


def test_postgres_audit_recovers_from_a_server_restart(kafka, postgres, topic_name, table):
    topic, dlq = topic_name("audit"), topic_name("dlq")
    produce(kafka.bootstrap_servers, topic, vm_records(10))
    settings = sink_settings(
        kafka.bootstrap_servers, "audit", dlq, **audit_section(postgres, table, topic)
    )
    runner = make_runner("audit", settings)
    run_until(runner, settled(runner, 10))

    restarted = threading.Event()
    runner = make_runner("audit", settings)  # same group: carries on after offset 10
    produce(kafka.bootstrap_servers, topic, vm_records(2, start=11))

    def restart_once() -> bool:
        # the server restarts once the sink holds a connection, and the rest of the
        # records arrive after it: the first write after goes over the broken connection
        if runner.report.delivered >= 2 and not restarted.is_set():
            postgres.restart()
            restarted.set()
            produce(kafka.bootstrap_servers, topic, vm_records(28, start=13))
        return runner.report.delivered >= 30

    run_until(runner, restart_once, timeout=120)

    assert restarted.is_set()
    assert runner.report.retried >= 1  # the broken connection was noticed and retried
    assert (runner.report.delivered, runner.report.dead_lettered) == (30, 0)
    count = execute(postgres.dsn, sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
    assert count[0][0] == 40
    assert asyncio.run(verify_table(AuditTable(postgres.dsn, table))).ok


def test_tampered_audit_row_fails_verify_and_names_it(postgres, tmp_path, table, kafka, topic_name):
    topic, dlq = topic_name("audit"), topic_name("dlq")
    produce(kafka.bootstrap_servers, topic, vm_records(6))
    settings = sink_settings(
        kafka.bootstrap_servers, "audit", dlq, **audit_section(postgres, table, topic)
    )
    runner = make_runner("audit", settings)
    run_until(runner, settled(runner, 6))
    ident = sql.Identifier(table)
    execute(
        postgres.dsn,
        sql.SQL(
            "UPDATE {} SET value = convert_to(replace(convert_from(value, 'UTF8'), "
            "'powered on', 'powered off'), 'UTF8') WHERE \"offset\" = 2"
        ).format(ident),
    )
    execute(postgres.dsn, sql.SQL('DELETE FROM {} WHERE "offset" = 4').format(ident))

    result = CliRunner().invoke(
        app, ["audit", "verify", "-c", config_file(tmp_path, postgres, table, kafka)]
    )

    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert any(line.startswith("modified:") and f"{topic}/0/2" in line for line in lines), lines
    assert any(line.startswith("deleted:") and f"{topic}/0/5" in line for line in lines), lines


def test_postgres_query_filters(postgres, tmp_path, table, kafka, topic_name):
    topic, dlq = topic_name("audit"), topic_name("dlq")
    produce(kafka.bootstrap_servers, topic, vm_records(6, vms=3))
    settings = sink_settings(
        kafka.bootstrap_servers, "audit", dlq, **audit_section(postgres, table, topic)
    )
    runner = make_runner("audit", settings)
    run_until(runner, settled(runner, 6))
    config = config_file(tmp_path, postgres, table, kafka)

    def keys(*args: str) -> list[int]:
        result = CliRunner().invoke(app, ["audit", "query", "-c", config, *args])
        assert result.exit_code == 0, result.output
        return [json.loads(line)["event"]["data"]["Key"] for line in result.output.splitlines()]

    assert keys() == [1, 2, 3, 4, 5, 6]
    assert keys("--entity", "vm-2") == [2, 5]
    assert keys("--entity", "VirtualMachine:vm-0", "--type", "com.vmware.vsphere.VmPowered*") == [
        3,
        6,
    ]
    assert keys("--vcenter", "vc01.example.com", "--since", "2026-11-22T12:00:04Z") == [4, 5, 6]
    assert keys("--vcenter", "elsewhere") == []
    assert keys("--limit", "2") == [1, 2]
