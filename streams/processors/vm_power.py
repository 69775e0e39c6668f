"""Example processor: VM power state changes, to their own topic `vcenter.vm-power`.

Each output is a small, stable event a dashboard or automation can consume without
knowing vSphere's event classes: which VM, on which host, and its new power state.
"""

from __future__ import annotations

from cloudevents.core.v1.event import CloudEvent

from schemas.codec import with_changes
from streams.api import data_of, processor

POWER_STATES = {
    "VmPoweredOnEvent": "poweredOn",
    "VmPoweredOffEvent": "poweredOff",
    "VmSuspendedEvent": "suspended",
    "DrsVmPoweredOnEvent": "poweredOn",
}


@processor(
    output="vcenter.vm-power",
    types=[f"com.vmware.vsphere.{name}.v0" for name in POWER_STATES],
)
def vm_power(event: CloudEvent) -> CloudEvent | None:
    data = data_of(event)
    vm = data.get("Vm") or {}
    host = data.get("Host") or {}
    state = POWER_STATES.get(event.get_subject() or "")
    if state is None or not vm:
        return None  # not the shape VEBA gives a VM event: nothing to report
    return with_changes(
        event,
        data={
            "vm": vm.get("Name"),
            "moref": (vm.get("Vm") or {}).get("Value"),
            "host": host.get("Name"),
            "powerState": state,
            "time": data.get("CreatedTime"),
            "user": data.get("UserName"),
        },
        type="com.vmware.vsphere.vcstream.VmPowerStateChanged.v0",
    )
