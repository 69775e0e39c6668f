"""The audit record keeps what Kafka held, byte for byte; records written in the first
format (hash version 1, a re-encoded event) keep verifying, on both backends."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner

from cli import app
from schemas.record import KafkaRecord
from sinks.audit.anchors import Anchor
from sinks.audit.file_layout import read_file
from sinks.audit.files import AuditFiles
from sinks.audit.postgres import AuditTable, row_to_record
from sinks.audit.record import GENESIS, HASH_VERSION, audit_record, kafka_headers, record_hash
from sinks.audit.verify import verify_chain, verify_files
from sinks.base import SinkEvent
from tests.sinks.helpers import (
    make_runner,
    produce,
    read_all,
    run_until,
    settled,
    sink_settings,
    vm_records,
)

V1_FIXTURE = Path(__file__).parent / "fixtures" / "audit_v1"
V2_FIXTURE = Path(__file__).parent / "fixtures" / "audit_v2"
NOW = datetime(2026, 11, 22, 13, 0, tzinfo=UTC)


def spelled_oddly(record: KafkaRecord) -> KafkaRecord:
    """The same event with data no encoder of ours writes: spaces, an escaped é, and an
    extra header; a store that re-encodes would change these bytes."""
    assert record.value is not None
    value = record.value.replace(b'"Key":', b'"Key" :  ').replace(b"powered on", b"\\u00e9 on")
    return KafkaRecord(value, record.key, [*record.headers, ("trace", "café \t raw".encode())])


def located(records: list[KafkaRecord], first: int = 0) -> list[SinkEvent]:
    return [
        SinkEvent(None, KafkaRecord(r.value, r.key, r.headers, "t", 0, first + i, 1_000 + i))
        for i, r in enumerate(records)
    ]


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["files", "postgres"])
def test_audit_store_holds_the_exact_kafka_bytes_and_headers(
    kafka, postgres, topic_name, tmp_path, backend
):
    topic = topic_name("audit")
    sent = [spelled_oddly(r) for r in vm_records(5)]
    produce(kafka.bootstrap_servers, topic, sent)
    table = f"audit_{uuid.uuid4().hex[:10]}"
    section: dict[str, Any] = (
        {"files": {"directory": str(tmp_path / "audit")}}
        if backend == "files"
        else {"backend": "postgres", "postgres": {"dsn": postgres.dsn, "table": table}}
    )
    settings = sink_settings(
        kafka.bootstrap_servers, "audit", topic_name("dlq"), topics=[topic], **section
    )
    runner = make_runner("audit", settings)
    run_until(runner, settled(runner, 5))
    stored = asyncio.run(stored_records(settings.sinks.audit.backend, tmp_path, postgres, table))

    on_kafka = read_all(kafka.bootstrap_servers, topic)
    assert [
        (r["offset"], r["key"], kafka_headers(r), r["value"], r["timestamp"]) for r in stored
    ] == [(k.offset, k.key, k.headers, k.value, k.timestamp_ms) for k in on_kafka]
    assert {r["hashVersion"] for r in stored} == {HASH_VERSION} and all(
        r["event"] == "" for r in stored
    )
    assert verify_chain([(str(r["offset"]), r) for r in stored]) == []


async def stored_records(backend: str, tmp_path: Path, postgres: Any, table: str) -> list[Any]:
    if backend == "files":
        store = AuditFiles(tmp_path / "audit")
        return [r for f in store.files() for r in read_file(f.path)]
    audit = AuditTable(postgres.dsn, table)
    try:
        return [r async for r in audit.rows()]
    finally:
        await audit.close()


def test_audit_query_prints_the_event_as_kafka_held_it(tmp_path):
    sent = [spelled_oddly(r) for r in vm_records(2)]
    store = AuditFiles(tmp_path / "audit")
    asyncio.run(append_and_close(store, [audit_record(i, NOW) for i in located(sent)]))
    config = tmp_path / "vcstream.yaml"
    config.write_text(json.dumps({"sinks": {"audit": {"files": {"directory": str(store.root)}}}}))

    result = CliRunner().invoke(app, ["audit", "query", "-c", str(config), "-o", "json"])

    assert result.exit_code == 0, result.output
    lines = result.stdout_bytes.splitlines()
    for line, record in zip(lines, sent, strict=True):
        assert record.value is not None and record.value in line  # data spliced, not re-encoded
        parsed = json.loads(line)
        assert (parsed["topic"], parsed["partition"]) == ("t", 0)
        assert parsed["event"]["data"]["Key"] in (1, 2)
    assert [json.loads(line)["offset"] for line in lines] == [0, 1]


async def append_and_close(
    store: AuditFiles, records: list[Any], prev: Anchor | None = None
) -> None:
    await store.append("t", 0, records, prev or Anchor(-1, GENESIS))
    await store.flush()


def test_files_of_hash_version_1_verify_and_the_chain_goes_on_in_the_current_one(tmp_path):
    root = tmp_path / "audit"
    shutil.copytree(V1_FIXTURE, root)
    store = AuditFiles(root)
    old = [r for f in store.files() for r in read_file(f.path)]
    assert {r["hashVersion"] for r in old} == {1} and old[0]["event"].startswith("{")
    assert verify_files(store).ok

    head = asyncio.run(store.head("vcenter.audit", 0))
    records = [
        {**audit_record(i, NOW), "topic": "vcenter.audit"} for i in located(vm_records(3), 6)
    ]
    asyncio.run(append_v2(store, records, head))

    stored = [r for f in AuditFiles(root).files() for r in read_file(f.path)]
    assert [(r["offset"], r["hashVersion"]) for r in stored] == [
        *((o, 1) for o in range(6)),
        *((o, HASH_VERSION) for o in range(6, 9)),
    ]
    assert stored[6]["prevHash"] == old[-1]["hash"]
    assert verify_files(AuditFiles(root)).ok


async def append_v2(store: AuditFiles, records: list[Any], head: Anchor) -> None:
    await store.append("vcenter.audit", 0, records, head)
    await store.flush()


def test_a_version_1_record_changed_is_still_found_modified(tmp_path):
    [path] = [f.path for f in AuditFiles(V1_FIXTURE).files()]
    records = list(read_file(path))
    records[3]["event"] = records[3]["event"].replace("powered on", "powered off")

    problems = verify_chain([(f"offset {r['offset']}", r) for r in records])

    assert [(p.kind, p.where) for p in problems] == [("modified", "offset 3")]


def test_a_hash_version_no_release_writes_is_reported_not_trusted():
    record = {**audit_record(located(vm_records(1))[0], NOW), "prevHash": GENESIS}
    record["hash"] = record_hash(record)
    assert verify_chain([("r", record)]) == []

    record["hashVersion"] = 9
    assert [p.kind for p in verify_chain([("r", record)])] == ["modified"]


# the table as the first release created it (hash version 1, no Kafka bytes, no seals)
V1_DDL = """
CREATE TABLE {table} (
    topic text NOT NULL, partition integer NOT NULL, "offset" bigint NOT NULL,
    id text NOT NULL, type text NOT NULL, source text NOT NULL, subject text,
    time timestamptz NOT NULL, vcenter_uuid text NOT NULL, entity text, entity_name text,
    event text NOT NULL, recorded_at timestamptz NOT NULL, prev_hash text NOT NULL,
    hash text NOT NULL, PRIMARY KEY (topic, partition, "offset")
)"""
V1_COLUMNS = (
    "topic", "partition", "offset", "id", "type", "source", "subject", "time",
    "vcenterUuid", "entity", "entityName", "event", "recordedAt", "prevHash", "hash",
)  # fmt: skip


@pytest.mark.integration
def test_rows_of_hash_version_1_verify_once_the_table_gains_the_new_columns(postgres):
    table = f"audit_{uuid.uuid4().hex[:10]}"
    old = [r for f in AuditFiles(V1_FIXTURE).files() for r in read_file(f.path)]
    columns = [
        "topic", "partition", "offset", "id", "type", "source", "subject", "time",
        "vcenter_uuid", "entity", "entity_name", "event", "recorded_at", "prev_hash", "hash",
    ]  # fmt: skip
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL(V1_DDL).format(table=sql.Identifier(table)))
        insert = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            sql.Identifier(table),
            sql.SQL(", ").join(map(sql.Identifier, columns)),
            sql.SQL(", ").join(sql.Placeholder() for _ in columns),
        )
        with conn.cursor() as cursor:
            cursor.executemany(insert, [tuple(r[name] for name in V1_COLUMNS) for r in old])

    async def carry_on() -> Any:
        audit = AuditTable(postgres.dsn, table)
        try:
            head = await audit.head("vcenter.audit", 0)
            records = [
                {**audit_record(i, NOW), "topic": "vcenter.audit"}
                for i in located(vm_records(3), 6)
            ]
            await audit.append("vcenter.audit", 0, records, head)  # creates the new columns
            rows = [r async for r in audit.rows()]
            return rows, await audit.verify()
        finally:
            await audit.close()

    rows, report = asyncio.run(carry_on())

    assert report.ok and report.records == 9, report.problems
    assert [r["hashVersion"] for r in rows] == [1] * 6 + [HASH_VERSION] * 3
    assert rows[0]["event"] == old[0]["event"]
    assert row_to_record({**_row(rows[7])})["value"] == rows[7]["value"]


@pytest.mark.integration
def test_rows_of_hash_version_2_verify_beside_new_ones(postgres):
    """The version 2 fixture's records as rows (what the sink stored before version 3):
    the table holds the same hashes, verifies, and the chain goes on in version 3."""
    table = f"audit_{uuid.uuid4().hex[:10]}"
    old = sorted(
        (r for f in AuditFiles(V2_FIXTURE).files() for r in read_file(f.path)),
        key=lambda r: r["offset"],
    )
    assert {r["hashVersion"] for r in old} == {2}

    async def store() -> Any:
        audit = AuditTable(postgres.dsn, table)
        try:
            unhashed = [{k: v for k, v in r.items() if k not in ("hash", "prevHash")} for r in old]
            head = await audit.append("vcenter.audit", 0, unhashed, Anchor(-1, GENESIS))
            records = [
                {**audit_record(i, NOW), "topic": "vcenter.audit"}
                for i in located(vm_records(2), 6)
            ]
            await audit.append("vcenter.audit", 0, records, head)
            return [r async for r in audit.rows()], await audit.verify()
        finally:
            await audit.close()

    rows, report = asyncio.run(store())

    assert report.ok and report.records == 8, report.problems
    assert [r["hash"] for r in rows[:6]] == [r["hash"] for r in old]
    assert [r["hashVersion"] for r in rows] == [2] * 6 + [HASH_VERSION] * 2


def _row(record: dict[str, Any]) -> dict[str, Any]:
    """A record as the table's row (column names), to show the mapping round-trips."""
    from sinks.audit.postgres import COLUMNS, record_to_row

    return dict(zip((column for _, column in COLUMNS), record_to_row(record), strict=True))


def test_the_fast_version_2_hash_writes_what_the_reference_spells():
    import hashlib

    from sinks.audit.record import _hash_v2, _reference_v2

    for item in located([spelled_oddly(r) for r in vm_records(3)]):
        record = {**audit_record(item, NOW), "prevHash": GENESIS}
        assert _hash_v2(record) == hashlib.sha256(_reference_v2(record)).hexdigest()
        record["subject"] = None  # an optional field unset takes the same path
        assert _hash_v2(record) == hashlib.sha256(_reference_v2(record)).hexdigest()


def test_audit_sink_encodes_each_consumed_record_as_the_record_dict_would(tmp_path):
    """The sink encodes a consumed record of a known header layout straight from its
    message (`AuditEncoder`, as a replay into audit files does), others from the record
    dict: the same bytes either way, for every variant the replay's check is held to
    (headers without a value, repeated, reordered, odd data, poison refused)."""
    from schemas import InvalidRecord
    from schemas.cloudevent import LayoutCheck
    from schemas.record import ConsumedRecord
    from sinks.audit.record import batch_tail, head_of
    from sinks.audit.sink import AuditSink
    from tests.replay.test_batch import every_case, placed
    from vcstream.settings.sinks import AuditSinkSettings

    sink = AuditSink(AuditSinkSettings(files={"directory": str(tmp_path)}))
    records, messages = placed(every_case())
    check = LayoutCheck().check
    fast = checked = 0
    for record, message in zip(records, messages, strict=True):
        item = SinkEvent(None, ConsumedRecord(message))
        try:
            item.layout = check(item.view)
        except InvalidRecord:
            continue
        checked += 1
        fast += item.layout is not None
        expected = head_of(audit_record(SinkEvent(None, record), NOW))
        assert sink._head(item, NOW, batch_tail(NOW)) == expected
    assert fast > checked // 2


def test_audit_sink_encodes_a_record_with_lengths_past_the_table_as_the_record_dict_would(
    tmp_path,
):
    """A value or an id past `encoding.LENGTHS` (8 KB) takes the encoder's
    general path: still the record dict's bytes, offset and partition included."""
    from dataclasses import replace

    from schemas.cloudevent import LayoutCheck
    from schemas.record import ConsumedRecord
    from sinks.audit.encoding import LENGTHS
    from sinks.audit.record import batch_tail, head_of
    from sinks.audit.sink import AuditSink
    from tests.replay.test_batch import base, header_set, placed
    from vcstream.settings.sinks import AuditSinkSettings

    sink = AuditSink(AuditSinkSettings(files={"directory": str(tmp_path)}))
    known = base(0)
    assert known.value is not None
    big_value = known.value[:-1] + b',"Padding":"' + b"p" * len(LENGTHS) + b'"}'
    made = [
        known,  # its layout learned first, so the others take the fast path
        replace(known, value=big_value),
        replace(known, headers=header_set(known, "ce_id", "ü".encode() * len(LENGTHS))),
    ]
    records, messages = placed([(r, None) for r in [*made, *made]])
    check = LayoutCheck().check
    for record, message in zip(records, messages, strict=True):
        item = SinkEvent(None, ConsumedRecord(message))
        item.layout = check(item.view)
        assert item.layout is not None
        expected = head_of(audit_record(SinkEvent(None, record), NOW))
        assert sink._head(item, NOW, batch_tail(NOW)) == expected
