"""EventEx posted into vcsim as fast as asked, from processes of their own, for
benchmarks, where generation must outpace what is measured.

Each process logs in once and has pyVmomi serialise one PostEvent request, which it then
sends again and again over one kept-alive TLS connection: the same SOAP call pyVmomi
makes, without its per-call cost.
"""

from __future__ import annotations

import http.client
import math
import multiprocessing
import ssl
import time
from contextlib import suppress
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from devenv.activity import connect, inventory, vm_eventex
from devenv.vcsim import LocalVcsim


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


def entity_for(index: int, hot_share: float, others: int) -> int:
    """Which entity event `index` is about: 0, the hot one, for `hot_share` of any run of
    events, else 1..`others` in turn. Spread evenly rather than drawn at random, so a
    short run already has the asked skew and two runs post the same sequence."""
    if others == 0 or hot_share >= 1:
        return 0
    hot_before = math.floor(index * hot_share)
    if math.floor((index + 1) * hot_share) > hot_before:
        return 0
    return 1 + (index - hot_before) % others


class EventFlood:
    """EventEx posted through the real API from `processes` processes: all about the
    first VM, or with `hot_share` below 1 that share about it and the rest spread over
    the other VMs (the record key is vCenter + entity, so this is how hot one partition
    of the raw topic runs).

    Each process logs in once and has pyVmomi serialise one PostEvent request per VM,
    which it then sends again and again over one kept-alive TLS connection: vcsim gives
    every copy its own key and createdTime. That is the same SOAP call pyVmomi makes, at
    a fraction of the client's CPU, so the figures measure vcsim and what reads it, not
    the generator (which reports its own rate, to be honest about it).
    """

    def __init__(self, vcsim: LocalVcsim, processes: int = 2, hot_share: float = 1.0) -> None:
        if not 0 <= hot_share <= 1:
            raise ValueError(f"hot_share must be between 0 and 1, not {hot_share}")
        context = multiprocessing.get_context("spawn")  # no inherited threads or sockets
        address = VcsimAddress.of(vcsim)
        self._workers: list[tuple[Any, Connection]] = []
        for _ in range(processes):
            ours, theirs = context.Pipe()
            process = context.Process(
                target=_flood_worker, args=(address, hot_share, theirs), daemon=True
            )
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
            if process.is_alive():  # still posting (a caller gave up waiting): no orphan
                process.terminate()
                process.join(5)
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


def _flood_worker(address: VcsimAddress, hot_share: float, connection: Connection) -> None:
    try:
        post = _PreparedPostEvent(address, hot_share)
        connection.send(("ok", None))
        while (command := connection.recv()) is not None:
            connection.send(("ok", post.repeat(*command)))
    except Exception as exc:
        connection.send(("failed", f"{type(exc).__name__}: {exc}"))


class _PreparedPostEvent:
    def __init__(self, address: VcsimAddress, hot_share: float = 1.0) -> None:
        from pyVmomi import vim

        si = connect(address)
        content = si.RetrieveContent()
        vms = inventory(content, vim.VirtualMachine)
        if hot_share >= 1:
            vms = vms[:1]
        manager = content.eventManager
        stub = si._stub
        method = type(manager)._GetMethodInfo("PostEvent")
        self._bodies = [
            stub.SerializeRequest(
                manager, method, [vm_eventex(vm, "com.example.bench", "bench event"), None]
            )
            for vm in vms
        ]
        self._hot_share = hot_share
        self._sent = 0  # over every `repeat`: a soak posts in many short ones
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
            self._send(entity_for(self._sent, self._hot_share, len(self._bodies) - 1))
            self._sent += 1
        return began, time.time()

    def _send(self, entity: int) -> None:
        body = self._bodies[entity]
        try:
            status, payload = self._exchange(body)
        except (http.client.RemoteDisconnected, ConnectionError):
            self._connection.close()  # an idle keep-alive closed by vcsim: once more
            status, payload = self._exchange(body)
        if status != 200:
            raise RuntimeError(f"PostEvent: HTTP {status}: {payload[:300]!r}")

    def _exchange(self, body: bytes) -> tuple[int, bytes]:
        self._connection.request("POST", "/sdk", body, self._headers)
        response = self._connection.getresponse()
        return response.status, response.read()
