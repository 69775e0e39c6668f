"""Drive a vcsim through the real vSphere API so that it records events of many kinds.

The session helpers are devenv.activity's; `connected` is re-exported for the
conformance test."""

from __future__ import annotations

from datetime import UTC, datetime

from pyVmomi import vim, vmodl

from devenv import LocalVcsim
from devenv.activity import connected, inventory
from devenv.activity import wait_task as wait

__all__ = ["connected", "make_events"]


def make_events(sim: LocalVcsim) -> None:
    """Power operations, VM creation, login/logout, posted events, tasks, host changes."""
    with connected(sim):  # a second session: UserLoginSessionEvent + UserLogoutSessionEvent
        pass
    with connected(sim) as si:
        content = si.RetrieveContent()
        events = content.eventManager
        vm = inventory(content, vim.VirtualMachine)[0]
        host = inventory(content, vim.HostSystem)[0]
        datacenter = inventory(content, vim.Datacenter)[0]

        wait(vm.PowerOffVM_Task())
        wait(vm.PowerOnVM_Task())
        wait(vm.SuspendVM_Task())
        wait(vm.PowerOnVM_Task())
        wait(vm.ReconfigVM_Task(vim.vm.ConfigSpec(numCPUs=2, memoryMB=2048)))
        wait(vm.CreateSnapshot_Task("snap", "before change", False, False))

        spec = vim.vm.ConfigSpec(
            name="created-by-test",
            guestId="otherGuest",
            numCPUs=1,
            memoryMB=128,
            files=vim.vm.FileInfo(vmPathName="[LocalDS_0]"),
        )
        created = wait(datacenter.vmFolder.CreateVM_Task(spec, host.parent.resourcePool, host))
        wait(created.PowerOnVM_Task())
        wait(created.PowerOffVM_Task())
        wait(created.Destroy_Task())

        now = datetime.now(UTC)
        # vcsim records no event for these operations: post what vCenter would
        cluster = host.parent
        for kind in (vim.event.EnteringMaintenanceModeEvent, vim.event.EnteredMaintenanceModeEvent,
                     vim.event.ExitMaintenanceModeEvent):  # fmt: skip
            events.PostEvent(
                kind(
                    key=0,
                    chainId=0,
                    createdTime=now,
                    userName="VSPHERE.LOCAL\\Administrator",
                    datacenter=vim.event.DatacenterEventArgument(
                        name=datacenter.name, datacenter=datacenter
                    ),
                    computeResource=vim.event.ComputeResourceEventArgument(
                        name=cluster.name, computeResource=cluster
                    ),
                    host=vim.event.HostEventArgument(name=host.name, host=host),
                )
            )
        vm_arg = vim.event.VmEventArgument(name=vm.name, vm=vm)
        events.PostEvent(
            vim.event.GeneralUserEvent(
                key=0, chainId=0, createdTime=now, userName="ops", message="hello", vm=vm_arg
            )
        )
        events.PostEvent(
            vim.event.EventEx(
                key=0,
                chainId=0,
                createdTime=now,
                userName="ops",
                eventTypeId="com.example.backup.finished",
                severity="info",
                message="backup finished",
                objectId=vm._moId,
                objectType=vim.VirtualMachine,
                objectName=vm.name,
                arguments=[
                    vmodl.KeyAnyValue(key="job", value="nightly"),
                    vmodl.KeyAnyValue(key="count", value=42),
                ],
            )
        )
        events.PostEvent(
            vim.event.AlarmStatusChangedEvent(
                key=0,
                chainId=0,
                createdTime=now,
                userName="",
                alarm=vim.event.AlarmEventArgument(
                    name="Host CPU usage", alarm=vim.alarm.Alarm("alarm-1")
                ),
                source=vim.event.ManagedEntityEventArgument(
                    name=datacenter.name, entity=datacenter
                ),
                entity=vim.event.ManagedEntityEventArgument(name=host.name, entity=host),
                host=vim.event.HostEventArgument(name=host.name, host=host),
                **{"from": "green", "to": "red"},
            )
        )
        task = vm.PowerOffVM_Task()
        wait(task)
        # a TaskEvent carrying the whole TaskInfo (nested objects, enums, times, MoRefs);
        # pyVmomi cannot send back the method name vcsim gave the task: set a real one
        info = task.info
        info.name = vim.VirtualMachine.PowerOff
        events.PostEvent(
            vim.event.TaskEvent(
                key=0, chainId=0, createdTime=now, userName="ops", info=info, vm=vm_arg
            ),
            taskInfo=info,
        )
