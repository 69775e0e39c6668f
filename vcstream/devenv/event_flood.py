"""EventEx posted into vcsim as fast as asked, from processes of their own, for
benchmarks, where generation must outpace what is measured.

Each process logs in once and has pyVmomi serialise one PostEvent request, which it then
sends again and again over one kept-alive TLS connection: the same SOAP call pyVmomi
makes, without its per-call cost.
"""

from __future__ import annotations

import http.client
import multiprocessing
import ssl
import time
from contextlib import suppress
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from vcstream.devenv.activity import connect, inventory, vm_eventex
from vcstream.devenv.vcsim import LocalVcsim


@dataclass(frozen=True)
class VcsimAddress:
    """What a posting process needs to log in (a LocalVcsim owns a process: no pickle)."""

    port: int
    username: str
    password: str = field(repr=False)  # a benchmark's output may be shared
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
        from pyVmomi import vim

        si = connect(address)
        content = si.RetrieveContent()
        vm = inventory(content, vim.VirtualMachine)[0]
        event = vm_eventex(vm, "com.example.bench", "bench event")
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
