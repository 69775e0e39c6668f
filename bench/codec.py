"""Codec throughput, per core: pyVmomi event → Kafka record, and Kafka record → CloudEvent.

    .venv/bin/python -m bench.codec [--seconds 2]

Prints one JSON object: records/s for each stage on a mix of realistic events (VM power
events, an EventEx with arguments, an alarm status change, a TaskEvent with a whole
TaskInfo), plus the SDK alone (`to_binary` of a prepared CloudEvent) for comparison.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.bindings import kafka as kafka_binding
from cloudevents.core.formats.json import JSONFormat
from pyVmomi import vim, vmodl

from schemas import decode
from schemas.codec import encode, encode_event, vsphere_cloudevent
from schemas.vmodl_json import event_class_name, to_go_json
from schemas.vsphere import VCenterIdentity

VCENTER = VCenterIdentity("0ce6e3d4-8d76-4a4e-9a43-5d6a5e8e1a01", "https://vc01/sdk", "8.0.3.0")


def sample_events() -> list[Any]:
    now = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    dc = vim.event.DatacenterEventArgument(name="dc1", datacenter=vim.Datacenter("datacenter-1"))
    cluster = vim.event.ComputeResourceEventArgument(
        name="cl1", computeResource=vim.ClusterComputeResource("domain-c7")
    )
    host = vim.event.HostEventArgument(name="esx01", host=vim.HostSystem("host-19"))
    vm = vim.event.VmEventArgument(name="web-01", vm=vim.VirtualMachine("vm-42"))
    common = {"chainId": 1, "createdTime": now, "userName": "VSPHERE.LOCAL\\Administrator"}
    where = {"datacenter": dc, "computeResource": cluster, "host": host}
    task = vim.TaskInfo(
        key="task-1", task=vim.Task("task-1"), name=vim.VirtualMachine.PowerOn,
        descriptionId="VirtualMachine.powerOn", entity=vim.VirtualMachine("vm-42"),
        entityName="web-01", state="success", cancelled=False, cancelable=False,
        reason=vim.TaskReasonUser(userName="admin"), queueTime=now, startTime=now,
        completeTime=now, eventChainId=1,
    )  # fmt: skip
    return [
        vim.event.VmPoweredOnEvent(key=1, vm=vm, fullFormattedMessage="on", **common, **where),
        vim.event.VmPoweredOffEvent(key=2, vm=vm, fullFormattedMessage="off", **common, **where),
        vim.event.EventEx(
            key=3,
            eventTypeId="com.vmware.vc.backup.finished",
            severity="info",
            objectId="vm-42",
            objectType=vim.VirtualMachine,
            objectName="web-01",
            arguments=[vmodl.KeyAnyValue(key="job", value="nightly")],
            **common,
            **where,
        ),
        vim.event.AlarmStatusChangedEvent(
            key=4,
            alarm=vim.event.AlarmEventArgument(name="cpu", alarm=vim.alarm.Alarm("alarm-1")),
            source=vim.event.ManagedEntityEventArgument(
                name="dc1", entity=vim.Datacenter("datacenter-1")
            ),
            entity=vim.event.ManagedEntityEventArgument(
                name="esx01", entity=vim.HostSystem("host-19")
            ),
            **{"from": "green", "to": "red"},
            **common,
            **where,
        ),
        vim.event.TaskEvent(key=5, info=task, vm=vm, **common, **where),
    ]


def rate(work: Callable[[Any], object], items: list[Any], seconds: float) -> float:
    """Calls per second of `work` over `items`, round robin, for about `seconds`."""
    for item in items:  # warm caches (per-type field lists)
        work(item)
    count, started = 0, time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        for item in items:
            work(item)
        count += len(items)
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    seconds = parser.parse_args().seconds

    events = sample_events()
    as_json = [to_go_json(e) for e in events]
    cloudevents = [
        vsphere_cloudevent(data, event_class_name(event), VCENTER)
        for data, event in zip(as_json, events, strict=True)
    ]
    records = [encode_event(e, VCENTER) for e in events]
    sdk_format = JSONFormat()

    results = {
        "pyvmomi_to_go_json_per_s": rate(to_go_json, events, seconds),
        "cloudevent_to_record_per_s": rate(encode, cloudevents, seconds),
        "pyvmomi_to_record_per_s": rate(lambda e: encode_event(e, VCENTER), events, seconds),
        "record_to_cloudevent_per_s": rate(decode, records, seconds),
        "sdk_to_binary_alone_per_s": rate(
            lambda ce: kafka_binding.to_binary(ce, sdk_format), cloudevents, seconds
        ),
    }
    print(
        json.dumps(
            {
                "bench": "codec",
                "events": [event_class_name(e) for e in events],
                "mean_record_bytes": sum(len(r.value or b"") for r in records) // len(records),
                **{k: round(v) for k, v in results.items()},
                "python": platform.python_version(),
                "seconds_per_measurement": seconds,
            }
        )
    )


if __name__ == "__main__":
    main()
