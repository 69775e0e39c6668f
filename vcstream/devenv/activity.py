"""Things happening in vcsim, made through the real vSphere API: one module for the dev
environment's demo, the tests and the benchmarks.

- `connect`, `wait_task`, `inventory`: a pyVmomi session and its basic chores;
- `VcsimClient`: power operations and posted events (EventEx, alarm events), as tests
  need them, since vcsim raises no alarms itself;
- `EventFlood`: EventEx posted as fast as asked from processes of their own, for
  benchmarks, where generation must outpace what is measured;
- `DemoActivity`: a trickle of VM power cycles and alarms for `vcstream dev up`.
"""

from __future__ import annotations

import http.client
import logging
import multiprocessing
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import count
from multiprocessing.connection import Connection
from typing import Any

from vcstream.devenv.vcsim import LocalVcsim

log = logging.getLogger(__name__)

# pyVmomi is imported where it is used: `vcstream` starts without loading it


def connect(vcsim: LocalVcsim, password: str | None = None) -> Any:
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
            collector.ResetCollector()
            page = collector.ReadPreviousEvents(1)
            return int(page[0].key) if page else 0
        finally:
            collector.DestroyCollector()

    def post_eventex(self, count: int = 1, type_id: str = "com.example.test") -> None:
        vim = self.vim
        vm = self.vms[0]
        for index in range(count):
            self.content.eventManager.PostEvent(
                vim.event.EventEx(
                    eventTypeId=type_id,
                    createdTime=datetime.now(UTC),
                    userName="",
                    key=0,
                    chainId=0,
                    objectId=vm._moId,
                    objectType=vim.VirtualMachine,
                    objectName=vm.name,
                    message=f"test event {index}",
                )
            )

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


# ---- a flood of events, for benchmarks ----------------------------------------------


@dataclass(frozen=True)
class VcsimAddress:
    """What a posting process needs to log in (a LocalVcsim owns a process: no pickle)."""

    port: int
    username: str
    password: str
    ca_file: str | None

    @classmethod
    def of(cls, vcsim: LocalVcsim) -> VcsimAddress:
        ca_file = str(vcsim.ca_file) if vcsim.ca_file else None
        return cls(vcsim.port, vcsim.username, vcsim.password, ca_file)

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)


@dataclass(frozen=True)
class Posted:
    events: int
    began: float  # epoch seconds of the first request
    seconds: float  # from the first request sent to the last one answered

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


class EventFlood:
    """EventEx for one VM, posted through the real API from `processes` processes.

    Each process logs in once and has pyVmomi serialise one PostEvent request, which it
    then sends again and again over one kept-alive TLS connection: vcsim gives every
    copy its own key and createdTime. That is the same SOAP call pyVmomi makes, at a
    fraction of the client's CPU, so the figures measure vcsim and what reads it, not
    the generator (which reports its own rate, to be honest about it).
    """

    def __init__(self, vcsim: LocalVcsim, processes: int = 2) -> None:
        context = multiprocessing.get_context("spawn")  # no inherited threads or sockets
        address = VcsimAddress.of(vcsim)
        self._workers: list[tuple[Any, Connection]] = []
        for _ in range(processes):
            ours, theirs = context.Pipe()
            process = context.Process(target=_flood_worker, args=(address, theirs), daemon=True)
            process.start()
            self._workers.append((process, ours))
        for _, connection in self._workers:
            _answer(connection)  # logged in and ready

    @property
    def pids(self) -> list[int]:
        """The posting processes (to account for their CPU)."""
        return [process.pid for process, _ in self._workers]

    def post(self, events: int, rate: float | None = None) -> Posted:
        """Post `events` in total, at `rate` per second overall or as fast as vcsim takes."""
        shares = [events // len(self._workers)] * len(self._workers)
        shares[0] += events - sum(shares)
        start_at = time.time() + 0.05
        share_rate = rate / len(self._workers) if rate else None
        for (_, connection), share in zip(self._workers, shares, strict=True):
            connection.send((share, share_rate, start_at))
        spans = [_answer(connection) for _, connection in self._workers]
        began = min(start for start, _ in spans)
        return Posted(events, began, max(end for _, end in spans) - began)

    def close(self) -> None:
        for process, connection in self._workers:
            with suppress(OSError):
                connection.send(None)
            process.join(10)
        self._workers = []

    def __enter__(self) -> EventFlood:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _answer(connection: Connection) -> Any:
    status, value = connection.recv()
    if status != "ok":
        raise RuntimeError(f"event flood worker failed: {value}")
    return value


def _flood_worker(address: VcsimAddress, connection: Connection) -> None:
    try:
        post = _PreparedPostEvent(address)
        connection.send(("ok", None))
        while (command := connection.recv()) is not None:
            connection.send(("ok", post.repeat(*command)))
    except Exception as exc:
        connection.send(("failed", f"{type(exc).__name__}: {exc}"))


class _PreparedPostEvent:
    def __init__(self, address: VcsimAddress) -> None:
        from pyVim.connect import SmartConnect
        from pyVmomi import vim

        si = SmartConnect(
            host="127.0.0.1",
            port=address.port,
            user=address.username,
            pwd=address.password,
            sslContext=address.ssl_context(),
        )
        content = si.RetrieveContent()
        vm = inventory(content, vim.VirtualMachine)[0]
        event = vim.event.EventEx(
            eventTypeId="com.example.bench",
            createdTime=datetime.now(UTC),
            userName="",
            key=0,
            chainId=0,
            objectId=vm._moId,
            objectType=vim.VirtualMachine,
            objectName=vm.name,
            message="bench event",
        )
        manager = content.eventManager
        stub = si._stub
        method = type(manager)._GetMethodInfo("PostEvent")
        self._body = stub.SerializeRequest(manager, method, [event, None])
        self._headers = {
            "Cookie": stub.cookie,
            "SOAPAction": stub.versionId,
            "Content-Type": "text/xml; charset=UTF-8",
        }
        self._connection = http.client.HTTPSConnection(
            "127.0.0.1", address.port, context=address.ssl_context()
        )

    def repeat(self, events: int, rate: float | None, start_at: float) -> tuple[float, float]:
        """Post `events` from `start_at` on, paced to `rate`; (first sent, last answered)."""
        delay = start_at - time.time()
        if delay > 0:
            time.sleep(delay)
        began = time.time()
        for index in range(events):
            if rate:
                ahead = start_at + index / rate - time.time()
                if ahead > 0:
                    time.sleep(ahead)
            self._send()
        return began, time.time()

    def _send(self) -> None:
        try:
            status, payload = self._exchange()
        except (http.client.RemoteDisconnected, ConnectionError):
            self._connection.close()  # an idle keep-alive closed by vcsim: once more
            status, payload = self._exchange()
        if status != 200:
            raise RuntimeError(f"PostEvent: HTTP {status}: {payload[:300]!r}")

    def _exchange(self) -> tuple[int, bytes]:
        self._connection.request("POST", "/sdk", self._body, self._headers)
        response = self._connection.getresponse()
        return response.status, response.read()


# ---- the demo of `vcstream dev up` ---------------------------------------------------


class DemoActivity:
    """VMs powered off and on every `period` seconds, and now and then an alarm turning
    red or green again, so `vcstream dev up` shows events flowing."""

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
