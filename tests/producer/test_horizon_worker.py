"""The Horizon worker's poll without Kafka: a window too big for one read is narrowed
until it is read whole, events are written oldest first with their checkpoint."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from producer import horizon_worker
from producer.horizon_position import HorizonPosition, decode_checkpoint
from producer.horizon_worker import HorizonWorker
from producer.writer import Outgoing
from schemas import decode
from vcstream.observability import Health
from vcstream.settings import Settings

NOW = 1_000_000


class FakeClient:
    """Answers newest first like the stand-in; windows wider than `widest` are incomplete."""

    logins = refreshes = 0

    def __init__(self, events: list[dict[str, Any]], widest: int, most: int | None = None) -> None:
        self.events = events
        self.widest = widest
        self.most = most  # more events than this in a window: incomplete too
        self.windows: list[tuple[int, int]] = []

    def audit_events(self, from_ms: int, to_ms: int) -> tuple[list[dict[str, Any]], bool]:
        self.windows.append((from_ms, to_ms))
        inside = [e for e in self.events if from_ms <= e["time"] <= to_ms]
        inside.sort(key=lambda e: e["time"], reverse=True)
        if to_ms - from_ms > self.widest:
            return inside[:2], False  # the newest pages only: unsafe to move past
        if self.most is not None and len(inside) > self.most:
            return inside[: self.most], False
        return inside, True

    def logout(self) -> None:
        pass


class FakeWriter:
    def __init__(self) -> None:
        self.transactions: list[Sequence[Outgoing]] = []

    def commit(self, records: Sequence[Outgoing]) -> None:
        self.transactions.append(list(records))


def worker_with(client: FakeClient, position: HorizonPosition, monkeypatch) -> HorizonWorker:
    settings = Settings(
        horizon=[
            {"name": "cs", "url": "http://127.0.0.1:1", "domain": "d", "username": "u"}
            | {"password": "p"}
        ]
    )
    monkeypatch.setattr(horizon_worker, "now_ms", lambda: NOW)
    worker = HorizonWorker(settings.horizon[0], settings, threading.Event(), Health())
    worker.client = client  # type: ignore[assignment]
    worker._writer = FakeWriter()  # type: ignore[assignment]
    worker._position = position
    return worker


def event(event_id: int, time_ms: int) -> dict[str, Any]:
    return {"id": event_id, "time": time_ms, "type": "VLSI_USERLOGGEDIN_REST"}


def test_too_big_a_window_is_narrowed_and_nothing_older_is_skipped(monkeypatch) -> None:
    events = [event(i, 1000 * i) for i in range(1, 11)]  # 1,000 .. 10,000 ms
    client = FakeClient(events, widest=300_000)
    worker = worker_with(client, HorizonPosition(0), monkeypatch)
    caught_up = [worker._poll() for _ in range(5)]
    assert caught_up[-1] is True
    assert caught_up[0] is False  # the first read was a narrowed window
    written = [
        data_id(record)
        for transaction in worker._writer.transactions  # type: ignore[union-attr]
        for topic, record in transaction
        if not topic.endswith("checkpoints")
    ]
    assert written == list(range(1, 11))
    last = worker._writer.transactions[-1][-1][1]  # type: ignore[union-attr]
    assert decode_checkpoint(last.value or b"") == HorizonPosition(10_000, frozenset({10}))


def data_id(record: Any) -> int:
    data: Any = decode(record).get_data()
    return int(data["id"])


def test_a_configuration_without_vcenters_or_horizon_servers_exits_2(caplog) -> None:
    from producer.app import run
    from vcstream.exits import EXIT_CONFIG

    assert run(Settings(), None, Health()) == EXIT_CONFIG
    assert "at least one vCenter (or horizon server) is needed" in caplog.text


def written_ids(worker: HorizonWorker) -> list[int]:
    return [
        data_id(record)
        for transaction in worker._writer.transactions  # type: ignore[union-attr]
        for topic, record in transaction
        if not topic.endswith("checkpoints")
    ]


def test_a_millisecond_denser_than_one_read_is_written_in_part_counted_and_passed(
    monkeypatch,
) -> None:
    from producer import metrics

    dense = [event(i, 5_000) for i in range(1, 6)]  # 5 events in one millisecond
    client = FakeClient([*dense, event(9, 7_000)], widest=10**9, most=3)
    worker = worker_with(client, HorizonPosition(0), monkeypatch)
    gaps = metrics.HORIZON_HISTORY_GAPS.labels("cs")
    before = gaps._value.get()
    caught_up = [worker._poll() for _ in range(60)]
    assert caught_up[-1] is True  # never stuck on the dense millisecond
    written = written_ids(worker)
    assert 9 in written and len(written) == len(set(written)) == 4  # 3 of the 5, then 9
    assert gaps._value.get() == before + 1
