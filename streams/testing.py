"""Unit-test a processor without Kafka.

    from streams.testing import vsphere_event, run
    from streams.processors.vm_power import vm_power

    event = vsphere_event("VmPoweredOnEvent", {"Vm": {"Name": "web01", ...}})
    [out] = run(vm_power, event)
    assert out.get_data()["powerState"] == "poweredOn"

`run` goes through the same path the worker does: the processor's type/subject/data
filter, derived ids, and encoding to a Kafka record and back, so an event the wire
format cannot carry fails here, not in production.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cloudevents.core.v1.event import CloudEvent

import schemas
from schemas.codec import vsphere_cloudevent
from schemas.vsphere import VCenterIdentity
from streams.api import Processor

TEST_VCENTER = VCenterIdentity(
    instance_uuid="00000000-0000-0000-0000-0000000000vc",
    source="https://vcenter.test/sdk",
    api_version="8.0.3.0",
    name="test",
)
_keys = iter(range(1, 1 << 31))


def vsphere_event(
    class_name: str,
    data: dict[str, Any] | None = None,
    vcenter: VCenterIdentity = TEST_VCENTER,
) -> CloudEvent:
    """A CloudEvent as the producer writes it; `Key` and `CreatedTime` filled if absent."""
    body: dict[str, Any] = {"Key": next(_keys), "CreatedTime": datetime.now(UTC).isoformat()}
    body.update(data or {})
    return vsphere_cloudevent(body, class_name, vcenter)


def run(item: Processor, *events: CloudEvent) -> list[CloudEvent]:
    """What the processor emits for these events, in order (events it does not select
    are skipped, as the worker would). Exceptions propagate: the worker dead-letters them."""
    outputs: list[CloudEvent] = []
    for event in events:
        if not item.selector.matches(event):
            continue
        for out in item(event):
            outputs.append(schemas.decode(schemas.encode(out)))
    return outputs
