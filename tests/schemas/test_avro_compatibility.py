"""Every Avro schema evolves backward-compatibly: data of any released version stays readable.

A release of a schema is a copy in schemas/history/<name>/v<N>.avsc. Changing a
`schemas/<name>.avsc` without adding the next version here fails the first test; a
change that old data cannot be read with fails the second.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from fastavro.schema import parse_schema, to_parsing_canonical_form

from schemas import avro
from tests.schemas.avro_samples import incompatibilities, samples

NAMES = avro.names()


def test_every_schema_is_checked() -> None:
    assert {"checkpoint", "alarm_definition", "audit_record"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_current_schema_is_released_in_history(name: str) -> None:
    versions = avro.history(name)
    assert versions, f"schemas/history/{name}/v1.avsc is missing"
    assert [v.version for v in versions] == [f"v{i}" for i in range(1, len(versions) + 1)]
    newest = to_parsing_canonical_form(versions[-1].parsed)
    assert newest == to_parsing_canonical_form(avro.load(name)), (
        f"schemas/{name}.avsc changed: copy it to schemas/history/{name}/"
        f"v{len(versions) + 1}.avsc (and keep it readable for older data)"
    )


@pytest.mark.parametrize("name", NAMES)
def test_data_of_every_released_version_reads_with_the_current_schema(name: str) -> None:
    current = avro.load(name)
    for version in avro.history(name):
        assert incompatibilities(version.parsed, current) == [], f"{name} {version.version}"


@pytest.mark.parametrize("name", NAMES)
def test_records_round_trip_through_single_object_encoding(name: str) -> None:
    for datum in samples(avro.load(name)):
        assert avro.decode(name, avro.encode(name, datum)) == datum


def _changed(name: str, change: Any) -> dict[str, Any]:
    raw = json.loads((avro.SCHEMA_DIR / f"{name}.avsc").read_text())
    change(raw["fields"])
    return dict(parse_schema(copy.deepcopy(raw), named_schemas={}))  # type: ignore[arg-type]


def test_check_fails_when_a_required_field_is_added() -> None:
    new = _changed("checkpoint", lambda fields: fields.append({"name": "x", "type": "string"}))
    assert incompatibilities(avro.load("checkpoint"), new)


def test_check_fails_when_a_field_type_narrows() -> None:
    def narrow(fields: list[dict[str, Any]]) -> None:
        next(f for f in fields if f["name"] == "lastEventKey")["type"] = "int"

    old = avro.load("checkpoint")
    assert incompatibilities(old, _changed("checkpoint", narrow))


def test_check_passes_when_an_optional_field_is_added() -> None:
    def add(fields: list[dict[str, Any]]) -> None:
        fields.append({"name": "note", "type": ["null", "string"], "default": None})

    assert incompatibilities(avro.load("checkpoint"), _changed("checkpoint", add)) == []
