"""Something happening in vcsim, so `vcstream dev up` shows events flowing: VMs powered
off and on, and now and then an alarm turning red, all through the real vSphere API."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from itertools import count
from typing import Any

from vcstream.devenv.vcsim import LocalVcsim

log = logging.getLogger(__name__)


def connect(vcsim: LocalVcsim) -> Any:
    from pyVim.connect import SmartConnect

    return SmartConnect(
        host="127.0.0.1",
        port=vcsim.port,
        user=vcsim.username,
        pwd=vcsim.password,
        sslContext=vcsim.ssl_context(),
    )


def wait_task(task: Any) -> None:
    while task.info.state not in ("success", "error"):
        time.sleep(0.05)


def post_alarm_status(si: Any, alarm_key: str, entity: Any, to: str, previous: str) -> None:
    """vcsim never raises alarms itself; an AlarmStatusChangedEvent is posted instead."""
    from pyVmomi import vim

    content = si.RetrieveContent()
    alarm = vim.alarm.Alarm(alarm_key, si._stub)
    event = vim.event.AlarmStatusChangedEvent(
        key=0,
        chainId=0,
        createdTime=datetime.now(UTC),
        userName="",
        fullFormattedMessage=f"Alarm {alarm_key} on {entity.name} changed from {previous} to {to}",
        alarm=vim.event.AlarmEventArgument(name=alarm.info.name, alarm=alarm),
        source=vim.event.ManagedEntityEventArgument(name=entity.name, entity=entity),
        entity=vim.event.ManagedEntityEventArgument(name=entity.name, entity=entity),
        host=vim.event.HostEventArgument(name=entity.name, host=entity),
        **{"from": previous, "to": to},
    )
    content.eventManager.PostEvent(event)


class DemoActivity:
    def __init__(self, vcsim: LocalVcsim, period: float = 3.0) -> None:
        self.vcsim = vcsim
        self.period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-activity", daemon=True)

    def start(self) -> DemoActivity:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        from pyVmomi import vim

        try:
            si = connect(self.vcsim)
            content = si.RetrieveContent()
            view = content.viewManager.CreateContainerView(
                content.rootFolder, [vim.VirtualMachine, vim.HostSystem], True
            )
            vms = [obj for obj in view.view if isinstance(obj, vim.VirtualMachine)]
            hosts = [obj for obj in view.view if isinstance(obj, vim.HostSystem)]
            view.Destroy()
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
