"""The audit files' own Avro encoding equals fastavro's, byte for byte; the container
file it writes is read by plain fastavro; hash version 3 is the SHA-256 of those bytes."""

from __future__ import annotations

import asyncio
import hashlib
import io
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fastavro
import pytest

from schemas import avro
from schemas.record import KafkaRecord
from sinks.audit import encoding
from sinks.audit.encoding import ContainerWriter, encode_body, encode_hash, read_header
from sinks.audit.file_layout import read_file
from sinks.audit.files import AuditFiles
from sinks.audit.record import (
    GENESIS,
    HASH_VERSION,
    V2_FIELDS,
    audit_record,
    chain,
    chain_encoded,
    record_hash,
)
from sinks.audit.verify import verify_chain, verify_files
from sinks.base import SinkEvent
from tests.sinks.helpers import vm_records

NOW = datetime(2026, 11, 22, 13, 0, 0, 123456, tzinfo=UTC)
V2_FIXTURE = Path(__file__).parent / "fixtures" / "audit_v2"
SCHEMA = avro.load("audit_record")


def fastavro_bytes(record: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, SCHEMA, record)
    return out.getvalue()


def kafka_records() -> list[KafkaRecord]:
    """Records in the shapes that matter to an encoder: empty and absent keys, no
    headers, unicode in names and values, a value past every short length."""
    [vm, *_] = vm_records(1)
    assert vm.value is not None
    return [
        vm,
        KafkaRecord(vm.value, None, vm.headers),
        KafkaRecord(vm.value, b"", vm.headers),
        KafkaRecord(vm.value, vm.key, [*vm.headers, ("trâce-ü", "café \t ☃".encode())]),
        KafkaRecord(vm.value.replace(b"powered on", "allumée ☃ ".encode()), vm.key, vm.headers),
        KafkaRecord(vm.value[:-1] + b', "Pad": "' + b"x" * 300_000 + b'"}', vm.key, vm.headers),
    ]


def records() -> list[dict[str, Any]]:
    made = []
    for index, record in enumerate(kafka_records()):
        located = KafkaRecord(
            record.value, record.key, record.headers, "vcenter.events", index, 10**index, 17 + index
        )
        made.append(audit_record(SinkEvent(None, located), NOW))
    # records as a reader might hand them over: no headers, nulls, far offsets and times
    made.append({**made[0], "partition": 2**31 - 1, "offset": -(2**63)})
    made.append(
        {
            **made[0],
            "headerNames": [],
            "headerValues": [],
            "timestamp": None,
            "key": None,
            "value": None,
            "subject": None,
            "entity": None,
            "entityName": None,
            "offset": 2**63 - 1,
            "partition": -1,
            "time": datetime(1969, 7, 20, 20, 17, 40, tzinfo=UTC),
            "recordedAt": datetime(2100, 1, 1, tzinfo=UTC) + timedelta(microseconds=1),
            "event": "ünïcode " * 2000,
        }
    )
    return made


def test_the_encoding_equals_fastavro_s_byte_for_byte() -> None:
    made = records()
    assert {r["headerNames"] == [] for r in made} == {True, False}
    assert {r["key"] for r in made} >= {None, b""}
    for linked, encoded in chain_encoded(made, GENESIS):
        assert encoded == fastavro_bytes(linked)
        assert encode_body(linked) + encode_hash(linked["hash"]) == encoded


def test_a_head_from_parts_encoded_once_equals_encode_head() -> None:
    """`encode_head_parts` (the audit encoder's: repeating fields encoded by the caller,
    the headers in pieces) writes `encode_record_head`'s bytes, for every record with a
    value."""
    made = [r for r in records() if r["value"] is not None]
    assert {r["timestamp"] is None for r in made} == {False}
    made.append({**made[0], "timestamp": None, "subject": None, "entity": None,
                 "entityName": None, "id": "ü" * 9000, "value": b"v" * 9000})  # fmt: skip
    for r in made:
        names, values = r["headerNames"], r["headerValues"]
        cut = len(values) // 2  # the pieces around two values, as a layout cuts them
        before, between, after = encoding.headers_around(names, values, 0, cut)
        parts = encoding.encode_head_parts(
            r["topic"], r["partition"], r["offset"],
            encoding.long(r["hashVersion"]), r["timestamp"],
            encoding.encode_optional_bytes(r["key"]),
            (before, encoding.raw(values[0]), between, encoding.raw(values[cut]), after),
            r["value"], encoding.string(r["id"]),
            encoding.string(r["type"]) + encoding.string(r["source"])
            + encoding.encode_optional(r["subject"]),
            encoding.micros(r["time"]),
            encoding.string(r["vcenterUuid"]) + encoding.encode_optional(r["entity"]),
            r["entityName"], encoding.string(r["event"]) + encoding.moment(r["recordedAt"]),
        )  # fmt: skip
        assert parts == encoding.encode_record_head(r)


@pytest.mark.parametrize(
    "value",
    [0, 1, -1, 63, 64, -64, -65, 8191, 8192, -8192, 2**13 - 1, 2**27 - 1, 2**27, -(2**27),
     2**27 + 1, 1_767_225_600_005, 1_767_225_600_005_123, -1_767_225_600_005_123,
     2**31 - 1, -(2**31), 2**63 - 1, -(2**63)],
)  # fmt: skip
def test_a_long_is_encoded_as_avro_says(value: int) -> None:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, {"type": "long"}, value)
    assert encoding.long(value) == out.getvalue()


def test_hash_version_3_is_the_sha256_of_the_stored_bytes_but_the_hash() -> None:
    [record, *_] = records()
    record["prevHash"] = GENESIS
    assert record["hashVersion"] == HASH_VERSION == 3
    expected = hashlib.sha256(b"vcstream-audit-v3" + fastavro_bytes({**record, "hash": ""})[:-1])
    assert record_hash(record) == expected.hexdigest()
    # the fields version 3 covers are those of version 2: every stored field but `hash`
    fields = [field["name"] for field in SCHEMA["fields"]]
    assert fields[-1] == "hash" and set(fields[:-1]) == set(V2_FIELDS)


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("value", lambda v: v.replace(b"powered on", b"powered of")),
        ("headerValues", lambda v: [*v[:-1], v[-1] + b" "]),
        ("key", lambda v: (v or b"") + b"!"),
        ("timestamp", lambda v: v + 1),
        ("recordedAt", lambda v: v + timedelta(microseconds=1)),
        ("prevHash", lambda v: "1" + v[1:]),
    ],
)
def test_a_version_3_record_changed_anywhere_is_found_modified(field: str, change: Any) -> None:
    linked = list(chain(records()[:3], GENESIS))
    linked[1] = {**linked[1], field: change(linked[1][field])}

    problems = verify_chain([(f"offset {r['offset']}", r) for r in linked])

    assert ("modified", "offset 10") in [(p.kind, p.where) for p in problems]


def test_a_record_of_another_shape_is_refused_with_what_is_wrong() -> None:
    [record, *_] = records()
    del record["type"]
    with pytest.raises(TypeError, match="not an audit record: KeyError\\('type'\\)"):
        encode_body({**record, "prevHash": GENESIS})
    assert [p.kind for p in verify_chain([("r", {**record, "prevHash": GENESIS, "hash": ""})])] == [
        "modified"
    ]


@pytest.mark.parametrize("codec", ["null", "deflate", "snappy"])
def test_the_container_file_is_read_by_plain_fastavro(tmp_path: Path, codec: str) -> None:
    path = tmp_path / "records.avro"
    linked = list(chain_encoded(records(), GENESIS))
    with path.open("wb") as stream:
        writer = ContainerWriter(stream, codec)
        for _, encoded in linked[:3]:
            writer.add(encoded)
        writer.flush()
        for _, encoded in linked[3:]:  # the large value fills a block on its own
            writer.add(encoded)
        writer.flush()
        writer.flush()  # nothing pending: no empty block

    with path.open("rb") as stream:
        reader = fastavro.reader(stream)
        assert reader.codec == codec
        assert isinstance(reader.writer_schema, dict)
        assert reader.writer_schema["name"] == "vcstream.AuditRecord"
        read = list(reader)
    assert read == [record for record, _ in linked]
    assert isinstance(read[0], dict) and read[0]["value"] == kafka_records()[0].value


def test_appending_to_a_container_file_keeps_its_codec_and_sync_marker(tmp_path: Path) -> None:
    path = tmp_path / "records.avro"
    linked = list(chain_encoded(records(), GENESIS))
    with path.open("wb") as stream:
        first = ContainerWriter(stream, "deflate")
        first.add(linked[0][1])
        first.flush()
    with path.open("r+b") as stream:
        again = ContainerWriter.resume(stream)
        assert (again.codec, again.sync) == ("deflate", first.sync)
        again.add(linked[1][1])
        again.flush()

    with path.open("rb") as stream:
        assert list(fastavro.reader(stream)) == [linked[0][0], linked[1][0]]


def test_a_file_that_is_not_avro_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not an Avro object container file"):
        read_header(io.BytesIO(b"PAR1 not avro"))
    with pytest.raises(ValueError, match="ends inside its header"):
        read_header(io.BytesIO(b"Obj\x01\x04"))
    with pytest.raises(ValueError, match="Avro codec 'lz4': expected one of null, deflate"):
        ContainerWriter(io.BytesIO(), "lz4")


def test_files_of_hash_version_2_verify_and_the_chain_goes_on_in_version_3(tmp_path: Path) -> None:
    root = tmp_path / "audit"
    shutil.copytree(V2_FIXTURE, root)
    store = AuditFiles(root)
    old = [r for f in store.files() for r in read_file(f.path)]
    assert {r["hashVersion"] for r in old} == {2}
    assert verify_files(store).ok

    head = asyncio.run(store.head("vcenter.audit", 0))
    new = [
        audit_record(
            SinkEvent(None, KafkaRecord(r.value, r.key, r.headers, "vcenter.audit", 0, 6 + i, 9)),
            NOW,
        )
        for i, r in enumerate(vm_records(3))
    ]

    async def append() -> None:
        await store.append("vcenter.audit", 0, new, head)
        await store.flush()

    asyncio.run(append())
    stored = [r for f in AuditFiles(root).files() for r in read_file(f.path)]
    assert [(r["offset"], r["hashVersion"]) for r in sorted(stored, key=lambda r: r["offset"])] == [
        *((o, 2) for o in range(6)),
        *((o, 3) for o in range(6, 9)),
    ]
    assert verify_files(AuditFiles(root)).ok


def test_a_version_2_record_changed_is_still_found_modified() -> None:
    old = sorted(
        (r for f in AuditFiles(V2_FIXTURE).files() for r in read_file(f.path)),
        key=lambda r: r["offset"],
    )
    old[1]["headerValues"][-1] = old[1]["headerValues"][-1].replace(b"caf", b"CAF")

    problems = verify_chain([(f"offset {r['offset']}", r) for r in old])

    assert [(p.kind, p.where) for p in problems] == [("modified", "offset 1")]
