"""Things happening in vcsim, made through the real vSphere API: one module for the dev
environment's demo, the tests and the benchmarks.

- `connect`, `wait_task`, `inventory`: a pyVmomi session and its basic chores;
- `VcsimClient`: power operations and posted events (EventEx, alarm events), as tests
  need them, since vcsim raises no alarms itself;
- (`devenv.event_flood.EventFlood`: EventEx posted as fast as asked, for
  benchmarks;)
- `DemoActivity`: a trickle of VM power cycles and alarms for `./dev run`.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import count
from typing import Any, Protocol

from devenv.background import BackgroundActivity
from devenv.vcsim import LocalVcsim

log = logging.getLogger(__name__)

# pyVmomi is imported where it is used: `vcstream` starts without loading it


class VcsimLogin(Protocol):
    """Where and as whom to log in: a LocalVcsim, or what a posting process gets of one."""

    @property
    def port(self) -> int: ...
    @property
    def username(self) -> str: ...
    @property
    def password(self) -> str: ...
    def ssl_context(self) -> ssl.SSLContext: ...


def connect(vcsim: VcsimLogin, password: str | None = None) -> Any:
    """A pyVmomi ServiceInstance logged into `vcsim` (a login is an event too)."""
    from pyVim.connect import SmartConnect

    return SmartConnect(
        host="127.0.0.1",
        port=vcsim.port,
        user=vcsim.username,
        pwd=password or vcsim.password,
        sslContext=vcsim.ssl_context(),
    )


@contextmanager
def connected(vcsim: LocalVcsim) -> Iterator[Any]:
    """`connect`, logged out again afterwards (a logout is an event too)."""
    from pyVim.connect import Disconnect

    si = connect(vcsim)
    try:
        yield si
    finally:
        Disconnect(si)


def vm_eventex(vm: Any, type_id: str, message: str) -> Any:
    """An EventEx about `vm`, to post (vcsim sets its key, chainId and createdTime)."""
    from pyVmomi import vim

    return vim.event.EventEx(
        eventTypeId=type_id,
        createdTime=datetime.now(UTC),
        userName="",
        key=0,
        chainId=0,
        objectId=vm._moId,
        objectType=vim.VirtualMachine,
        objectName=vm.name,
        message=message,
    )


def wait_task(task: Any, timeout: float = 30) -> Any:
    """The task's result once it succeeded (pyVim's WaitForTask trips on vcsim's tasks)."""
    deadline = time.monotonic() + timeout
    while (info := task.info).state in ("queued", "running"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"task {info.key} still {info.state} after {timeout}s")
        time.sleep(0.02)
    if info.state != "success":
        raise RuntimeError(f"task {info.descriptionId} failed: {info.error}")
    return info.result


def inventory(content: Any, kind: type) -> list[Any]:
    """Every managed object of `kind` under the root folder."""
    view = content.viewManager.CreateContainerView(content.rootFolder, [kind], True)
    try:
        return list(view.view)
    finally:
        view.DestroyView()


def post_alarm_status(si: Any, alarm_key: str, entity: Any, to: str, previous: str) -> None:
    """An AlarmStatusChangedEvent for a host, as vCenter would raise it (vcsim never does)."""
    from pyVmomi import vim

    alarm = vim.alarm.Alarm(alarm_key, si._stub)
    si.RetrieveContent().eventManager.PostEvent(
        vim.event.AlarmStatusChangedEvent(
            key=0,
            chainId=0,
            createdTime=datetime.now(UTC),
            userName="",
            fullFormattedMessage=(
                f"Alarm {alarm_key} on {entity.name} changed from {previous} to {to}"
            ),
            alarm=vim.event.AlarmEventArgument(name=alarm.info.name, alarm=alarm),
            source=vim.event.ManagedEntityEventArgument(name=entity.name, entity=entity),
            entity=vim.event.ManagedEntityEventArgument(name=entity.name, entity=entity),
            host=vim.event.HostEventArgument(name=entity.name, host=entity),
            **{"from": previous, "to": to},
        )
    )


class VcsimClient:
    """Makes events with the real vSphere API: power operations and PostEvent.

    vcsim's PostEvent overwrites key, chainId, createdTime and userName, so the values
    given here only have to be valid.
    """

    def __init__(self, vcsim: LocalVcsim, password: str | None = None) -> None:
        from pyVmomi import vim

        self.vim: Any = vim
        self.si = connect(vcsim, password)
        self.content = self.si.RetrieveContent()
        self.vms = inventory(self.content, vim.VirtualMachine)
        self.datacenter = self.content.rootFolder.childEntity[0]

    def newest_key(self) -> int:
        """The key of the newest event vcsim holds (0 when none)."""
        vim = self.vim
        collector = self.content.eventManager.CreateCollectorForEvents(vim.event.EventFilterSpec())
        try:
            # not ResetCollector + ReadPreviousEvents(1): that returns the one before
            # the newest (seen on vcsim)
            return max((int(event.key) for event in collector.latestPage), default=0)
        finally:
            collector.DestroyCollector()

    def post_eventex(self, count: int = 1, type_id: str = "com.example.test") -> None:
        for index in range(count):
            event = vm_eventex(self.vms[0], type_id, f"test event {index}")
            self.content.eventManager.PostEvent(event)

    def post_alarm_status_changed(self, alarm: Any, status: str = "red") -> None:
        """An AlarmStatusChangedEvent (green to `status`) for the first VM."""
        vim = self.vim
        vm = self.vms[0]
        self.content.eventManager.PostEvent(
            vim.event.AlarmStatusChangedEvent(
                createdTime=datetime.now(UTC),
                userName="",
                key=0,
                chainId=0,
                alarm=vim.event.AlarmEventArgument(name=alarm.info.name, alarm=alarm),
                source=vim.event.ManagedEntityEventArgument(name=vm.name, entity=vm),
                entity=vim.event.ManagedEntityEventArgument(name=vm.name, entity=vm),
                vm=vim.event.VmEventArgument(name=vm.name, vm=vm),
                **{"from": "green"},
                to=status,
            )
        )

    def post_alarm_event(self, kind: str, alarm: Any, name: str) -> None:
        """An alarm lifecycle event (`kind`, e.g. "AlarmCreatedEvent") on the root folder."""
        cls = getattr(self.vim.event, kind)
        folder = self.content.rootFolder
        self.content.eventManager.PostEvent(
            cls(
                createdTime=datetime.now(UTC),
                userName="",
                key=0,
                chainId=0,
                alarm=self.vim.event.AlarmEventArgument(name=name, alarm=alarm),
                entity=self.vim.event.ManagedEntityEventArgument(name=folder.name, entity=folder),
            )
        )

    def create_cpu_alarm(self, name: str, description: str) -> Any:
        """A real alarm on the datacenter (VM CPU above 75%/90%), set up like the first
        alarm vcsim has; vcsim posts no event for it: `post_alarm_event` does."""
        vim = self.vim
        manager = self.content.alarmManager
        template = manager.GetAlarm(None)[0].info
        return manager.CreateAlarm(
            self.datacenter,
            vim.alarm.AlarmSpec(
                name=name,
                description=description,
                enabled=True,
                expression=vim.alarm.OrAlarmExpression(
                    expression=[
                        vim.alarm.MetricAlarmExpression(
                            operator="isAbove",
                            type=vim.VirtualMachine,
                            metric=vim.PerformanceManager.MetricId(counterId=6, instance=""),
                            yellow=7500,
                            red=9000,
                        )
                    ]
                ),
                setting=template.setting,
            ),
        )

    def power_cycle(self, vm: Any) -> None:
        """Power off and on again: real tasks with their own events."""
        wait_task(vm.PowerOffVM_Task())
        wait_task(vm.PowerOnVM_Task())

    def terminate_other_sessions(self) -> int:
        """Expire every session but this one, as an administrator would."""
        manager = self.content.sessionManager
        own = manager.currentSession.key
        others = [s.key for s in manager.sessionList or [] if s.key != own]
        if others:
            manager.TerminateSession(others)
        return len(others)

    def close(self) -> None:
        from pyVim.connect import Disconnect

        Disconnect(self.si)


# ---- the demo of `./dev run` ---------------------------------------------------


class DemoActivity(BackgroundActivity):
    """VMs powered off and on every `period` seconds, and now and then an alarm turning
    red or green again, so `./dev run` shows events flowing."""

    def __init__(self, vcsim: LocalVcsim, period: float = 3.0) -> None:
        super().__init__("demo-activity", period)
        self.vcsim = vcsim

    def _run(self) -> None:
        from pyVmomi import vim

        try:
            si = connect(self.vcsim)
            content = si.RetrieveContent()
            vms = inventory(content, vim.VirtualMachine)
            hosts = inventory(content, vim.HostSystem)
            for tick in count():
                if self._stop.wait(self.period):
                    return
                vm = vms[tick % len(vms)]
                wait_task(vm.PowerOffVM_Task())
                wait_task(vm.PowerOnVM_Task())
                if tick % 3 == 2:
                    to, previous = ("red", "green") if tick % 2 else ("green", "red")
                    post_alarm_status(si, "alarm-11", hosts[0], to, previous)
        except Exception:
            log.exception("demo activity stopped")
