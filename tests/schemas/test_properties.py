"""Property-based: encode → decode is the identity, for generated events of every class."""

from __future__ import annotations

import json
import uuid
from typing import Any

from cloudevents.core.v1.event import CloudEvent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import decode, encode
from schemas.codec import encode_event
from schemas.vmodl_json import event_class_name, to_go_json
from schemas.vmodl_parse import event_from_go_json
from schemas.vsphere import ID_NAMESPACE, VCenterIdentity, as_utc, uuid5
from tests.schemas.vmodl_strategies import event_classes, events

VCENTER = VCenterIdentity("0ce6e3d4-8d76-4a4e-9a43-5d6a5e8e1a01", "https://vc/sdk", "8.0.3.0")
EVENTS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_strategies_cover_every_event_class() -> None:
    assert len(event_classes()) > 400


@EVENTS
@given(events())
def test_event_encode_decode_is_identity(event: Any) -> None:
    record = encode_event(event, VCENTER)
    decoded = decode(record)
    data = to_go_json(event)
    assert decoded.get_data() == data
    assert decoded.get_subject() == event_class_name(event)
    again = encode(decoded, record.key)
    assert (again.value, again.key, again.headers) == (record.value, record.key, record.headers)


@EVENTS
@given(events())
def test_go_json_reads_back_into_the_same_event(event: Any) -> None:
    data = json.loads(json.dumps(to_go_json(event)))
    assert to_go_json(event_from_go_json(event_class_name(event), data)) == data


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)  # JSON numbers as Go (and orjson) read them
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)
_RESERVED = {
    *("id", "source", "specversion", "type", "time", "subject", "datacontenttype"),
    *("dataschema", "partitionkey"),
}
_EXTENSIONS = st.dictionaries(
    st.from_regex(r"[a-z][a-z0-9]{0,19}", fullmatch=True).filter(lambda n: n not in _RESERVED),
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20),
    max_size=3,
)


@settings(max_examples=200, deadline=None)
@given(
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30),
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30),
    st.datetimes(timezones=st.timezones()),
    _EXTENSIONS,
    _JSON.filter(lambda d: d is not None),
)
def test_any_cloudevent_encode_decode_is_identity(
    event_id: str, event_type: str, time: Any, extensions: dict[str, str], data: Any
) -> None:
    attributes = {
        "id": event_id,
        "source": "https://vc/sdk",
        "type": event_type,
        "time": time,
        "datacontenttype": "application/json",
        **extensions,
    }
    event = CloudEvent(attributes=attributes, data=data)
    decoded = decode(encode(event))
    # times are written in UTC; compared as UTC instants (an aware datetime in a fold,
    # e.g. a zone's switch from local mean time, never equals one in another zone)
    assert decoded.get_time() == as_utc(time)
    assert without_time(decoded.get_attributes()) == without_time(event.get_attributes())
    assert decoded.get_data() == data


def without_time(attributes: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attributes.items() if k != "time"}


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_fast_uuid5_equals_the_standard_library(name: str) -> None:
    assert uuid5(name) == str(uuid.uuid5(ID_NAMESPACE, name))
