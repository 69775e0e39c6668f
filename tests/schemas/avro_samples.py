"""Sample data for any Avro schema, and a backward-compatibility check built on it."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import fastavro

_TIME = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
_PRIMITIVES: dict[str, Any] = {
    "null": None,
    "boolean": True,
    "int": -7,
    "long": 2**40,
    "float": 1.5,
    "double": 2.25,
    "bytes": b"\x00\xff",
    "string": "sample",
}


def samples(schema: Any) -> list[Any]:
    """Two data for `schema`: one taking every union's first branch, one its last."""
    return [sample(schema, branch=0), sample(schema, branch=-1)]


def sample(schema: Any, branch: int) -> Any:
    if isinstance(schema, str):
        return _PRIMITIVES[schema]
    if isinstance(schema, list):
        return sample(schema[branch], branch)
    kind = schema["type"]
    if schema.get("logicalType") in ("timestamp-micros", "timestamp-millis"):
        return _TIME
    if kind == "record":
        return {f["name"]: sample(f["type"], branch) for f in schema["fields"]}
    if kind == "array":
        return [sample(schema["items"], branch)]
    if kind == "map":
        return {"k": sample(schema["values"], branch)}
    if kind == "enum":
        return schema["symbols"][branch]
    if kind == "fixed":
        return b"\x01" * schema["size"]
    return sample(kind, branch)


def incompatibilities(writer: dict[str, Any], reader: dict[str, Any]) -> list[str]:
    """Why data written with `writer` cannot be read with `reader` (empty: it can)."""
    found = []
    for datum in samples(writer):
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, writer, datum)
        buffer.seek(0)
        try:
            fastavro.schemaless_reader(buffer, writer, reader)
        except Exception as exc:  # fastavro raises several types on resolution errors
            found.append(f"{type(exc).__name__}: {exc}")
    return found
