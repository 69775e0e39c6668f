"""Built-in, off by default (`streams.maintenance`): alarms on a host in maintenance mode,
and on the VMs on it, are suppressed; vSphere keeps alarming on hosts being serviced.

A host is in maintenance from its `EnteredMaintenanceModeEvent` to its
`ExitMaintenanceModeEvent` (at most `maxDuration`, in case the exit was never read).
Those events are keyed by the host, the alarms on its VMs by each VM, in other
partitions: the state is a GlobalTable that every worker holds whole, keyed by
`<event source>/<host moref>`. A write reaches the other workers through the changelog,
so an alarm read on another worker in the moment right after the host entered may still
go through.

An alarm names its host in `Entity` (an alarm on the host) or in `Host` (an alarm on a
VM, whose event carries the host it runs on).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from streams.api import Inline, data_of, inline, suppress
from streams.state import GlobalTable
from vcstream.settings.streams import MaintenanceSettings

NAME = "maintenance"
REASON = "maintenance"
ENTERED = "com.vmware.vsphere.EnteredMaintenanceModeEvent.v0"
EXITED = "com.vmware.vsphere.ExitMaintenanceModeEvent.v0"


def maintenance(settings: MaintenanceSettings) -> Inline:
    hosts = GlobalTable("hosts-in-maintenance", help="Hosts in maintenance mode, since when.")
    include_vms = settings.include_vms
    longest = settings.max_duration

    @inline(name=NAME, types=[ENTERED, EXITED, *settings.types], tables=[hosts])
    def silence_hosts_in_maintenance(event: CloudEvent) -> CloudEvent:
        data = data_of(event)
        kind = event.get_type()
        if kind in (ENTERED, EXITED):
            host = _moref(data.get("Host"), "HostSystem")
            if host is None:
                return event
            key = f"{event.get_source()}/{host}"
            if kind == ENTERED:
                hosts[key] = {"since": _iso(event.get_time()), "event": event.get_id()}
            else:
                hosts.pop(key, None)
            return event
        for host in _hosts_of(data, include_vms):
            entry = hosts.get(f"{event.get_source()}/{host}")
            if entry is not None and _within(entry, event.get_time(), longest):
                return suppress(event, REASON)
        return event

    return silence_hosts_in_maintenance


def _hosts_of(data: dict[str, Any], include_vms: bool) -> set[str]:
    found = {_moref(data.get("Entity"), "HostSystem")}
    if include_vms:
        found.add(_moref(data.get("Host"), "HostSystem"))
    return {host for host in found if host is not None}


def _moref(argument: Any, kind: str) -> str | None:
    """The moref value in an entity argument (`{"Name", "<Field>": {"Type", "Value"}}`)
    if it is of this type."""
    if not isinstance(argument, dict):
        return None
    for name, value in argument.items():
        if name != "Name" and isinstance(value, dict) and value.get("Type") == kind:
            found = value.get("Value")
            return str(found) if found else None
    return None


def _within(entry: Any, moment: datetime | None, longest: timedelta | None) -> bool:
    if longest is None or moment is None or not isinstance(entry, dict):
        return True
    since = entry.get("since")
    if not isinstance(since, str):
        return True
    try:
        start = datetime.fromisoformat(since)
    except ValueError:
        return True
    return moment - start <= longest


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
