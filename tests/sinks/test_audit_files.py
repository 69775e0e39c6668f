"""The audit sink's Avro-file backend: layout, exactly-once storage, tamper evidence, query."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
import pytest
from typer.testing import CliRunner

from cli import app
from schemas import avro, decode
from schemas.codec import encode_vsphere
from schemas.record import KafkaRecord
from schemas.vsphere import VCenterIdentity
from sinks.audit.file_layout import read_file
from sinks.audit.files import AuditFiles
from sinks.audit.record import audit_record
from sinks.audit.store import EMPTY
from sinks.audit.verify import verify_files
from sinks.base import SinkEvent
from tests.sinks.helpers import (
    VCENTER,
    make_runner,
    produce,
    run_until,
    settled,
    sink_settings,
    vm_event,
    vm_records,
)

OTHER_VCENTER = VCenterIdentity(
    instance_uuid="77aa0000-1111-2222-3333-444455556666",
    source="https://vc02.example.com:8443/sdk",
    api_version="8.0.3.0",
)


def located(records: list[KafkaRecord], topic: str = "t", partition: int = 0) -> list[SinkEvent]:
    return [
        SinkEvent(
            decode(r),
            KafkaRecord(r.value, r.key, r.headers, topic, partition, offset),
        )
        for offset, r in enumerate(records)
    ]


def store_records(root: Path, records: list[KafkaRecord], **kw: Any) -> AuditFiles:
    """The records stored as the sink stores them, open files closed."""
    store = AuditFiles(root, **kw)
    now = datetime(2026, 11, 22, 13, 0, tzinfo=UTC)

    async def write() -> None:
        await store.append("t", 0, [audit_record(item, now) for item in located(records)], EMPTY)
        await store.flush()

    asyncio.run(write())
    return store


def rewrite(path: Path, change: Any) -> None:
    """Rewrite an audit file in place with `change(records)` applied: a tamperer's edit."""
    records = list(read_file(path))
    change(records)
    with path.open("wb") as stream:
        fastavro.writer(stream, avro.load("audit_record"), records)


def audit_config(tmp_path: Path, bootstrap: str | None = None, **files: Any) -> Path:
    """A config for the audit commands; `verify` also reads the sink's commits in Kafka."""
    config = tmp_path / "vcstream.yaml"
    section = {"backend": "files", "files": {"directory": str(tmp_path / "audit"), **files}}
    document: dict[str, Any] = {"sinks": {"audit": section}, "metrics": {"enabled": False}}
    if bootstrap is not None:
        document["kafka"] = {"bootstrapServers": bootstrap}
    config.write_text(json.dumps(document))
    return config


@pytest.mark.integration
def test_audit_files_store_every_record_once_even_when_redelivered(kafka, topic_name, tmp_path):
    topic, dlq = topic_name("audit"), topic_name("dlq")
    mixed = [
        *vm_records(20),
        *[encode_vsphere(vm_event(k), "VmPoweredOnEvent", OTHER_VCENTER) for k in range(21, 31)],
    ]
    produce(kafka.bootstrap_servers, topic, mixed)
    section = {
        "topics": [topic],
        "files": {"directory": str(tmp_path / "audit")},
        "batch": {"maxRecords": 7, "maxWait": "PT0.05S"},
    }
    for group in ("first", "second"):  # the second group re-reads everything
        settings = sink_settings(kafka.bootstrap_servers, "audit", dlq, groupId=group, **section)
        runner = make_runner("audit", settings)
        run_until(runner, settled(runner, 30))

    store = AuditFiles(tmp_path / "audit")
    offsets = [r["offset"] for f in store.files() for r in read_file(f.path)]
    assert sorted(offsets) == list(range(30))  # none lost, none twice
    folders = {f.path.parent.relative_to(store.root).as_posix() for f in store.files()}
    assert folders == {
        f"date=2026-11-22/vcenter={VCENTER.instance_uuid}",
        f"date=2026-11-22/vcenter={OTHER_VCENTER.instance_uuid}",
    }
    for audit_file in store.files():  # the name carries the offset range held
        held = [r["offset"] for r in read_file(audit_file.path)]
        assert (audit_file.first, audit_file.last) == (min(held), max(held))
    assert not list(store.root.rglob("*.tmp"))
    assert verify_files(store).ok


@pytest.mark.parametrize("limit", [{"rotate_records": 5}, {"rotate_bytes": 1024}])
def test_audit_files_rotate_by_size(tmp_path, limit):
    store = store_records(tmp_path, vm_records(12), **limit)
    files = store.files()
    assert len(files) > 1
    assert [r["offset"] for f in files for r in read_file(f.path)] == list(range(12))
    assert verify_files(store).ok


def test_recover_finishes_an_older_release_s_batch_and_drops_open_files(tmp_path):
    store = store_records(tmp_path, vm_records(3))
    [done] = store.files()
    decided = done.path.with_name(done.path.name + ".tmp")
    done.path.rename(decided)  # as if killed between the marker and the rename
    (tmp_path / ".pending-t+0.json").write_text(json.dumps([[str(decided), str(done.path)]]))
    undecided = done.path.with_name("t+0+00000000000000000099-00000000000000000099.avro.tmp")
    undecided.write_bytes(b"half a file")

    store.recover()

    assert [f.path for f in store.files()] == [done.path]
    assert not undecided.exists() and not (tmp_path / ".pending-t+0.json").exists()


@pytest.mark.integration
def test_tampered_audit_file_fails_verify_and_names_it(kafka, tmp_path):
    store = store_records(tmp_path / "audit", vm_records(6))
    [audit_file] = store.files()

    def edit(records: list[dict[str, Any]]) -> None:
        assert b"powered on" in records[2]["value"]
        records[2]["value"] = records[2]["value"].replace(b"powered on", b"powered off")

    rewrite(audit_file.path, edit)
    config = audit_config(tmp_path, kafka.bootstrap_servers)
    result = CliRunner().invoke(app, ["audit", "verify", "-c", str(config)])

    assert result.exit_code == 1
    assert "modified" in result.output and audit_file.path.name in result.output
    assert "(offset 2)" in result.output


@pytest.mark.parametrize(
    ("change", "kind", "where"),
    [
        (lambda rs: rs.pop(3), "deleted", "(offset 4)"),
        (lambda rs: rs.insert(1, rs.pop(3)), "reordered", "(offset 3)"),
        (lambda rs: rs.pop(), "deleted", "name says offsets 0-5, holds 0-4"),
    ],
    ids=["deleted-middle", "reordered", "deleted-last"],
)
def test_verify_names_deleted_and_reordered_records(tmp_path, change, kind, where):
    store = store_records(tmp_path, vm_records(6))
    [audit_file] = store.files()
    rewrite(audit_file.path, change)

    report = verify_files(AuditFiles(tmp_path))

    assert not report.ok
    assert any(p.kind == kind and where in str(p) for p in report.problems), report.problems


def test_verify_reports_a_corrupt_file(tmp_path):
    store = store_records(tmp_path, vm_records(4))
    [audit_file] = store.files()
    data = bytearray(audit_file.path.read_bytes())
    data[len(data) // 2 :] = b"\x00" * (len(data) - len(data) // 2)
    audit_file.path.write_bytes(bytes(data))

    report = verify_files(AuditFiles(tmp_path))

    # and the sealed head is no longer readable
    assert [p.kind for p in report.problems] == ["corrupt", "deleted"]


def test_query_filters_by_type_entity_vcenter_and_time(tmp_path):
    records = [
        *vm_records(4, vms=2),
        encode_vsphere(vm_event(5, vm=9, class_name="VmPoweredOffEvent"), "VmPoweredOffEvent",
                       OTHER_VCENTER),
    ]  # fmt: skip
    store_records(tmp_path / "audit", records)
    config = str(audit_config(tmp_path))

    def ids(*args: str) -> list[int]:
        result = CliRunner().invoke(app, ["audit", "query", "-c", config, *args])
        assert result.exit_code == 0, result.output
        return [json.loads(line)["event"]["data"]["Key"] for line in result.output.splitlines()]

    assert ids() == [1, 2, 3, 4, 5]
    assert ids("--type", "*VmPoweredOff*") == [5]
    assert ids("--entity", "vm-1") == [1, 3]
    assert ids("--entity", "vm0") == [2, 4]  # by name
    assert ids("--vcenter", "vc02.example.com") == [5]
    assert ids("--vcenter", VCENTER.instance_uuid) == [1, 2, 3, 4]
    assert ids("--since", "2026-11-22T12:00:03Z", "--until", "2026-11-22T12:00:05Z") == [3, 4]
    table = CliRunner().invoke(app, ["audit", "query", "-c", config, "-o", "table"])
    assert "VmPoweredOffEvent" in table.output and "vm9" in table.output


def test_query_rejects_a_bad_time(tmp_path):
    result = CliRunner().invoke(
        app, ["audit", "query", "-c", str(audit_config(tmp_path)), "--since", "yesterday"]
    )
    assert result.exit_code == 2
    assert "neither an ISO 8601 time nor an age" in result.output


@pytest.mark.parametrize(
    "limits", [{}, {"rotate_records": 4}, {"rotate_bytes": 3000}], ids=["none", "records", "bytes"]
)
def test_heads_are_chained_and_written_as_append_writes_record_dicts(tmp_path, monkeypatch, limits):
    """`append_heads` (the sink's and the replay's path: records encoded up to their
    `prevHash`) writes the files, blocks, chains and seals `append` writes from record
    dicts, byte for byte: across dates and vCenters, rotations, and a batch re-delivered
    in part."""
    from datetime import timedelta

    from sinks.audit.record import head_of

    monkeypatch.setattr("sinks.audit.encoding.os.urandom", lambda size: b"s" * size)
    for module in ("encoding", "files", "open_file"):  # several blocks a file, cut as append cuts
        monkeypatch.setattr(f"sinks.audit.{module}.BLOCK_BYTES", 2600)
    now = datetime(2026, 11, 22, 13, 0, tzinfo=UTC)
    mixed = [
        *vm_records(10),
        *[encode_vsphere(vm_event(k), "VmPoweredOnEvent", OTHER_VCENTER) for k in range(3)],
        *vm_records(5),
    ]
    records = [audit_record(item, now) for item in located(mixed)]
    for record in records[6:9]:  # the next day, then back (another file each time)
        record["time"] += timedelta(days=1)
    records[16]["time"] = datetime(2026, 11, 22, 23, 59, 59, 999999, tzinfo=UTC)
    records[17]["time"] = datetime(2026, 11, 23, tzinfo=UTC)
    heads = [head_of(record) for record in records]
    batches = [(0, 5), (3, 11), (11, 18)]  # the second re-delivers 3 and 4

    by_dicts = AuditFiles(tmp_path / "dicts", **limits)
    by_heads = AuditFiles(tmp_path / "heads", **limits)
    head_d = head_h = EMPTY
    for start, stop in batches:
        head_d = by_dicts.append_blocking("t", 0, [dict(r) for r in records[start:stop]], head_d)
        head_h = by_heads.append_heads("t", 0, heads[start:stop], head_h)
        assert head_h == head_d
    by_dicts.rotate_blocking()
    by_heads.rotate_blocking()

    def written(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*.avro")}

    def seals(store: AuditFiles) -> list[dict[str, Any]]:
        lines = (store.seals / "t+0.seals").read_text().splitlines()
        return [{k: v for k, v in json.loads(line).items() if k != "sealedAt"} for line in lines]

    files = written(tmp_path / "dicts")
    assert len(files) >= 5  # two dates, two vCenters, back again
    assert written(tmp_path / "heads") == files
    assert seals(by_heads) == seals(by_dicts)
    stored = [r["offset"] for f in by_heads.files() for r in read_file(f.path)]
    assert sorted(stored) == list(range(18))  # each once
    assert verify_files(by_heads).ok


@pytest.mark.parametrize("takes_heads", [True, False])
def test_the_sink_appends_by_what_its_store_says_it_takes(tmp_path, takes_heads):
    """A store that `takes_heads` gets the encoded heads (`append_heads`), any other
    record dicts (`append`): the sink asks the store, never its class, and either way
    stores the same records, each chained and verified."""
    from sinks.audit.sink import AuditSink
    from vcstream.settings.sinks import AuditSinkSettings

    called: list[str] = []

    class Store(AuditFiles):
        def append_heads(self, *args: Any) -> Any:
            called.append("append_heads")
            return super().append_heads(*args)

        async def append(self, *args: Any) -> Any:
            called.append("append")
            return await super().append(*args)

    Store.takes_heads = takes_heads
    sink = AuditSink(AuditSinkSettings(files={"directory": str(tmp_path)}))
    store = sink.store = Store(tmp_path)

    async def deliver() -> None:
        await sink.deliver(located(vm_records(4)))
        await sink.deliver(located(vm_records(7))[4:])
        await store.close()

    asyncio.run(deliver())
    assert called == ["append_heads" if takes_heads else "append"] * 2
    stored = [r["offset"] for f in store.files() for r in read_file(f.path)]
    assert sorted(stored) == list(range(7))
    assert verify_files(store).ok


@pytest.mark.integration
def test_the_runtime_collects_seldom_while_it_runs_the_audit_sink(kafka, topic_name, tmp_path):
    """The audit sink holds thousands of records per partition: the runtime sets the
    collector's young threshold the sink asks for while it runs, and gives the
    process's own back when it stops."""
    import gc

    from sinks.audit.sink import AuditSink
    from sinks.runtime import GC_YOUNG_THRESHOLD

    assert AuditSink.gc_young_threshold is not None
    assert AuditSink.gc_young_threshold > GC_YOUNG_THRESHOLD
    topic = topic_name("audit")
    produce(kafka.bootstrap_servers, topic, vm_records(20))
    section = {
        "topics": [topic],
        "files": {"directory": str(tmp_path / "audit")},
        "batch": {"maxWait": "PT0.05S"},
    }
    runner = make_runner("audit", sink_settings(kafka.bootstrap_servers, "audit", "dlq", **section))
    collecting = gc.get_threshold()
    seen: list[int] = []

    def done() -> bool:
        seen.append(gc.get_threshold()[0])
        return settled(runner, 20)()

    run_until(runner, done, timeout=60)
    assert AuditSink.gc_young_threshold in seen
    assert gc.get_threshold() == collecting
