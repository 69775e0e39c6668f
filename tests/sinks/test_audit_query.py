"""`audit query`: each (topic, partition, offset) once, shown; `--distinct-ids`; the
output formats; and the rotation settings it reads, refused when wrong."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from cli import app
from schemas.record import KafkaRecord
from sinks.audit.files import AuditFiles
from sinks.audit.record import audit_record
from sinks.audit.store import EMPTY
from sinks.base import SinkEvent
from tests.sinks.helpers import (
    committed,
    make_runner,
    produce,
    run_until,
    sink_settings,
    vm_records,
)
from vcstream.settings import Settings

NOW = datetime(2026, 11, 22, 13, 0, tzinfo=UTC)


def store(root: Path, topic: str, records: list[KafkaRecord], **kw: Any) -> None:
    files = AuditFiles(root, **kw)
    items = [
        SinkEvent(None, KafkaRecord(r.value, r.key, r.headers, topic, 0, offset, 1_000))
        for offset, r in enumerate(records)
    ]

    async def write() -> None:
        await files.append(topic, 0, [audit_record(i, NOW) for i in items], EMPTY)
        await files.flush()

    asyncio.run(write())


def query(root: Path, *args: str) -> list[dict[str, Any]]:
    config = root.parent / "vcstream.yaml"
    config.write_text(json.dumps({"sinks": {"audit": {"files": {"directory": str(root)}}}}))
    result = CliRunner().invoke(app, ["audit", "query", "-c", str(config), *args])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines()]


def test_query_returns_each_offset_once_even_when_a_file_holds_it_twice(tmp_path):
    root = tmp_path / "audit"
    store(root, "vcenter.audit", vm_records(4))
    # a copy of the same records under another name (a restored backup beside the data)
    [original] = AuditFiles(root).files()
    copy = original.path.with_name(original.path.name.replace("+0+", "+0+1"))
    copy.write_bytes(original.path.read_bytes())

    rows = query(root)

    assert [(r["topic"], r["partition"], r["offset"]) for r in rows] == [
        ("vcenter.audit", 0, offset) for offset in range(4)
    ]


def test_distinct_ids_shows_an_event_stored_from_two_topics_once(tmp_path):
    root = tmp_path / "audit"
    records = vm_records(3)
    store(root, "vcenter.audit", records)
    store(root, "vcenter.events", records)  # a replay of the raw topic into audit

    every = query(root)
    distinct = query(root, "--distinct-ids")

    assert len(every) == 6 and len({r["event"]["id"] for r in every}) == 3
    assert sorted(r["event"]["id"] for r in distinct) == sorted({r["event"]["id"] for r in every})


def test_query_output_auto_is_json_lines_off_a_terminal_and_a_table_when_asked(tmp_path):
    root = tmp_path / "audit"
    store(root, "vcenter.audit", vm_records(2))
    assert [r["offset"] for r in query(root)] == [0, 1]  # CliRunner is no terminal
    config = str(root.parent / "vcstream.yaml")
    table = CliRunner().invoke(app, ["audit", "query", "-c", config, "-o", "table"])
    assert "vcenter.audit/0@1" in table.output
    wrong = CliRunner().invoke(app, ["audit", "query", "-c", config, "-o", "xml"])
    assert wrong.exit_code == 2 and "--output must be json, table or auto" in wrong.output


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"rotateInterval": "PT0S"}, "rotateInterval"),
        ({"rotateRecords": 0}, "rotateRecords"),
        ({"maxFileBytes": 1024}, "files.maxFileBytes is now files.rotateBytes"),
        ({"codec": "zip"}, "codec"),
    ],
)
def test_wrong_rotation_settings_are_refused_naming_the_key(files, message):
    with pytest.raises(ValidationError) as error:
        Settings(sinks={"audit": {"files": files}})
    assert message in str(error.value)


@pytest.mark.integration
def test_a_quiet_partition_s_file_rotates_by_time_and_is_committed(kafka, topic_name, tmp_path):
    topic = topic_name("audit")
    produce(kafka.bootstrap_servers, topic, vm_records(3))
    files = {"directory": str(tmp_path / "audit"), "rotateInterval": "PT0.5S"}
    section = {"topics": [topic], "files": files, "batch": {"maxWait": "PT0.05S"}}
    settings = sink_settings(kafka.bootstrap_servers, "audit", topic_name("dlq"), **section)
    runner = make_runner("audit", settings)

    # no more records arrive: only the interval can close the file and move the offset
    run_until(runner, lambda: bool(AuditFiles(tmp_path / "audit").files()))

    [closed] = AuditFiles(tmp_path / "audit").files()
    assert (closed.first, closed.last) == (0, 2)
    assert committed(kafka.bootstrap_servers, "vcstream-sink-audit", topic) == 3
