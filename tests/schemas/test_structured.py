"""The structured form built from a record's bytes (`CloudEventView.http_structured`, what
replay writes into files) reads back as the SDK's own, in the SDK's attribute order."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from cloudevents.core.formats.json import JSONFormat

from schemas import KafkaRecord, VCenterIdentity, decode
from schemas.codec import encode_vsphere

VCENTER = VCenterIdentity("5f2a9c1e-0c3b-4f6e-9d7a-1b2c3d4e5f60", "https://vc/sdk", "8.0.3.0")


def sample(key: int) -> KafkaRecord:
    data = {
        "Key": key,
        "CreatedTime": datetime(2026, 1, 1, 0, 0, key, 123000, tzinfo=UTC),
        "FullFormattedMessage": 'caf\u00e9 \u2603 "quoted" \\ back',
        "Vm": {"Name": "web", "Vm": {"Type": "VirtualMachine", "Value": f"vm-{key}"}},
    }
    return encode_vsphere(data, "VmPoweredOnEvent", VCENTER)


def test_structured_mode_reads_back_field_for_field_as_the_sdks() -> None:
    for key in range(5):
        record = sample(key)
        ours = json.loads(record.cloudevent().http_structured()[1])
        sdk = json.loads(JSONFormat().write(decode(record)))
        assert ours == sdk
        assert list(ours) == list(sdk)  # attributes in the same order


def test_structured_mode_holds_the_value_bytes_exactly_and_the_last_repeated_header() -> None:
    record = sample(1)
    repeated = KafkaRecord(record.value, record.key, [*record.headers, ("ce_subject", b"Other")])
    _, written = repeated.cloudevent().http_structured()
    assert record.value is not None and written.endswith(b',"data":' + record.value + b"}")
    assert json.loads(written)["subject"] == "Other"
