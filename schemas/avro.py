"""Avro (fastavro) for the records with a fixed shape: checkpoint, alarm definition, audit.

A schema is the file `schemas/<name>.avsc`; every version ever released is kept in
`schemas/history/<name>/v<N>.avsc` (the newest equal to the current file; a test
enforces both that and backward compatibility). Payloads use Avro's single-object
encoding (`C3 01`, the writer schema's CRC-64-AVRO fingerprint, then the datum), so a
reader finds the exact schema the data was written with and resolves it against the
current one: data written by any older release stays readable.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

SCHEMA_DIR = Path(__file__).resolve().parent
HISTORY_DIR = SCHEMA_DIR / "history"
SINGLE_OBJECT_MARKER = b"\xc3\x01"
_HEADER_LENGTH = len(SINGLE_OBJECT_MARKER) + 8


class AvroError(ValueError):
    """Avro data or a schema name that cannot be used; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    name: str
    version: str  # "current" or the history file's stem, e.g. "v1"
    parsed: dict[str, Any]
    fingerprint: bytes  # CRC-64-AVRO of the parsing canonical form, little-endian


def names() -> list[str]:
    """Every schema in `schemas/`."""
    return sorted(path.stem for path in SCHEMA_DIR.glob("*.avsc"))


@cache
def load(name: str) -> dict[str, Any]:
    """The current schema `name`, parsed (fastavro)."""
    return _version(name, SCHEMA_DIR / f"{name}.avsc", "current").parsed


@cache
def history(name: str) -> tuple[SchemaVersion, ...]:
    """Every released version of `name`, oldest first."""
    folder = HISTORY_DIR / name
    files = sorted(folder.glob("v*.avsc"), key=lambda path: int(path.stem[1:]))
    return tuple(_version(name, path, path.stem) for path in files)


def encode(name: str, record: dict[str, Any]) -> bytes:
    """`record` in Avro single-object encoding with the current schema `name`."""
    current = _current(name)
    buffer = io.BytesIO()
    buffer.write(SINGLE_OBJECT_MARKER)
    buffer.write(current.fingerprint)
    try:
        fastavro.schemaless_writer(buffer, current.parsed, record)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise AvroError(f"record does not fit schema {name}: {exc}") from None
    return buffer.getvalue()


def decode(name: str, payload: bytes) -> dict[str, Any]:
    """A record written with the current or any older version of `name`, read as current."""
    if len(payload) < _HEADER_LENGTH or not payload.startswith(SINGLE_OBJECT_MARKER):
        raise AvroError(f"not Avro single-object encoding (expected marker C3 01) for {name}")
    writer = _writers(name).get(payload[2:_HEADER_LENGTH])
    if writer is None:
        raise AvroError(
            f"written with an unknown version of schema {name} "
            f"(fingerprint {payload[2:_HEADER_LENGTH].hex()})"
        )
    try:
        record = fastavro.schemaless_reader(
            io.BytesIO(payload[_HEADER_LENGTH:]), writer.parsed, load(name)
        )
    except (ValueError, TypeError, EOFError, IndexError) as exc:
        raise AvroError(f"corrupt {name} record ({writer.version}): {exc}") from None
    if not isinstance(record, dict):
        raise AvroError(f"schema {name} does not describe a record")
    return record


@cache
def _current(name: str) -> SchemaVersion:
    load(name)  # raises a clear error for an unknown name
    return _version(name, SCHEMA_DIR / f"{name}.avsc", "current")


@cache
def _writers(name: str) -> dict[bytes, SchemaVersion]:
    versions = {v.fingerprint: v for v in history(name)}
    current = _current(name)
    versions[current.fingerprint] = current
    return versions


def _version(name: str, path: Path, version: str) -> SchemaVersion:
    if not path.is_file():
        raise AvroError(f"no Avro schema {name!r} ({path} does not exist)")
    try:
        raw = json.loads(path.read_text())
        # named types may repeat across versions: each version gets its own namespace
        parsed = parse_schema(raw, named_schemas={})
    except (json.JSONDecodeError, fastavro.schema.SchemaParseException) as exc:
        raise AvroError(f"invalid Avro schema {path}: {exc}") from None
    if not isinstance(parsed, dict):
        raise AvroError(f"Avro schema {path} is not a record schema")
    canonical = to_parsing_canonical_form(parsed)
    return SchemaVersion(
        name=name,
        version=version,
        parsed=parsed,
        fingerprint=bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO")),
    )
