"""The producer's per-event work on a ReadNextEvents page, in CPU ms per event, two ways:

    .venv/bin/python -m bench.decode [--page-size 100] [--seconds 2]

- pyvmomi: pyVmomi's SoapResponseDeserializer → `to_go_json` → the record through the
  CloudEvents SDK (what the producer did before `schemas.vmodl_soap`);
- fast: `schemas.vmodl_soap.read_events` → `schemas.codec.encode_vsphere` (now);

and each half alone: decode (pyVmomi + `to_go_json`, or `read_events`) and encode (the
SDK's CloudEvent and `to_binary`, or `encode_vsphere`'s own headers).

The page is bench.codec's mix of realistic events (VM power events, an EventEx, an
alarm status change, a TaskEvent with a whole TaskInfo), written by pyVmomi's own SOAP
serializer as vCenter answers ReadNextEvents. Both ways run in this process, one after
the other; the ratio is fast / pyvmomi. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import time
from collections.abc import Callable
from typing import Any

from pyVmomi import SoapAdapter, VmomiSupport

from bench.codec import VCENTER, sample_events
from bench.machine import machine
from schemas.codec import encode, encode_vsphere, vsphere_cloudevent
from schemas.vmodl_json import event_class_name, to_go_json
from schemas.vmodl_soap import read_events
from schemas.vsphere import record_key

EVENT_ARRAY: Any = VmomiSupport.GetVmodlType("vim.event.Event[]")
NEWEST = VmomiSupport.newestVersions.GetName("vim")


def read_next_events_response(events: list[Any], version: str = NEWEST) -> bytes:
    """`events` as vCenter answers ReadNextEvents, written by pyVmomi's serializer."""
    info = VmomiSupport.Object(name="returnval", type=EVENT_ARRAY, version=version, flags=0)
    body = SoapAdapter.SerializeToStr(events, info=info, version=version, nsMap={"urn:vim25": ""})
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"'
        ' xmlns:xsd="http://www.w3.org/2001/XMLSchema"'
        ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
        f'<ReadNextEventsResponse xmlns="urn:vim25">{body}</ReadNextEventsResponse>'
        "</soapenv:Body></soapenv:Envelope>"
    ).encode()


class PyvmomiStub:
    """What pyVmomi's deserialiser asks of a stub."""

    def __init__(self, version: str) -> None:
        self.version = version

    def SupportServerGUIDs(self) -> bool:
        return False


def pyvmomi_page(xml: bytes, version: str = NEWEST) -> list[Any]:
    return list(SoapAdapter.SoapResponseDeserializer(PyvmomiStub(version)).Deserialize(
        xml, EVENT_ARRAY
    ) or [])  # fmt: skip


def page_of(size: int) -> bytes:
    mix = sample_events()
    events = []
    for key in range(1, size + 1):
        event = copy.deepcopy(mix[key % len(mix)])
        event.key = key
        events.append(event)
    return read_next_events_response(events)


def the_pyvmomi_way(xml: bytes) -> list[Any]:
    records = []
    for event in pyvmomi_page(xml):
        data = to_go_json(event)
        cloudevent = vsphere_cloudevent(data, event_class_name(event), VCENTER)
        records.append(encode(cloudevent, record_key(VCENTER.instance_uuid, data)))
    return records


def the_fast_way(xml: bytes) -> list[Any]:
    events = read_events(xml, NEWEST)
    assert events is not None, "the fast path declined the bench page"
    return [encode_vsphere(e.data, e.class_name, VCENTER) for e in events]


def pyvmomi_decode(xml: bytes) -> list[Any]:
    return [(event_class_name(e), to_go_json(e)) for e in pyvmomi_page(xml)]


def fast_decode(xml: bytes) -> list[Any]:
    return [(e.class_name, e.data) for e in read_events(xml, NEWEST) or []]


def sdk_encode(page: list[Any]) -> list[Any]:
    return [
        encode(vsphere_cloudevent(data, name, VCENTER), record_key(VCENTER.instance_uuid, data))
        for name, data in page
    ]


def direct_encode(page: list[Any]) -> list[Any]:
    return [encode_vsphere(data, name, VCENTER) for name, data in page]


def cpu_ms_per_event(work: Callable[[Any], list[Any]], page: Any, seconds: float) -> float:
    events = len(work(page))  # warm caches
    done = 0
    start = time.process_time()
    while time.process_time() - start < seconds:
        work(page)
        done += events
    return (time.process_time() - start) * 1000 / done


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    xml = page_of(args.page_size)
    slow, fast = the_pyvmomi_way(xml), the_fast_way(xml)
    same = [(r.value, r.key, r.headers) for r in slow] == [
        (r.value, r.key, r.headers) for r in fast
    ]
    pyvmomi_ms = cpu_ms_per_event(the_pyvmomi_way, xml, args.seconds)
    fast_ms = cpu_ms_per_event(the_fast_way, xml, args.seconds)
    decoded = fast_decode(xml)
    halves = {
        "decode_pyvmomi_cpu_ms_per_event": cpu_ms_per_event(pyvmomi_decode, xml, args.seconds),
        "decode_fast_cpu_ms_per_event": cpu_ms_per_event(fast_decode, xml, args.seconds),
        "encode_sdk_cpu_ms_per_event": cpu_ms_per_event(sdk_encode, decoded, args.seconds),
        "encode_direct_cpu_ms_per_event": cpu_ms_per_event(direct_encode, decoded, args.seconds),
    }
    print(
        json.dumps(
            {
                "benchmark": "decode",
                "page_size": args.page_size,
                "records_identical": same,
                "pyvmomi_cpu_ms_per_event": round(pyvmomi_ms, 4),
                "fast_cpu_ms_per_event": round(fast_ms, 4),
                "pyvmomi_events_per_cpu_s": round(1000 / pyvmomi_ms),
                "fast_events_per_cpu_s": round(1000 / fast_ms),
                "ratio_fast_to_pyvmomi": round(fast_ms / pyvmomi_ms, 3),
                **{name: round(ms, 4) for name, ms in halves.items()},
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "machine": machine(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
