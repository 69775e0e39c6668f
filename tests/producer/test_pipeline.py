"""The commit pipeline: one transaction in flight, in order, errors surfacing (no services).

The writer here is a stand-in that records what it was asked to commit and when; the
pipeline's promise is about ordering and hand-over between threads, not about Kafka
(the fault tests cover the real writer)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from producer.pipeline import Batch, CommitPipeline
from producer.position import Position
from producer.writer import Outgoing, TransactionStateUnknown
from schemas.record import KafkaRecord

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def batch(key: int) -> Batch:
    gathered = Batch()
    gathered.add([key], [("events", KafkaRecord(value=str(key).encode()))], [])
    return gathered.close(Position(key, T0), ("checkpoints", KafkaRecord(value=b"cp")))


class RecordingWriter:
    """Commits take `seconds`; remembers each commit's span; fails on the keys asked."""

    def __init__(self, seconds: float = 0.05, fail_on: frozenset[int] = frozenset()) -> None:
        self.seconds = seconds
        self.fail_on = fail_on
        self.spans: list[tuple[int, float, float]] = []  # (key, began, ended)
        self.threads: set[str] = set()
        self.committed_in: list[tuple[int, str]] = []  # (key, thread), in commit order
        self._lock = threading.Lock()

    def commit(self, records: Sequence[Outgoing]) -> None:
        key = int(records[0][1].value or b"0")
        began = time.monotonic()
        time.sleep(self.seconds)
        with self._lock:
            self.spans.append((key, began, time.monotonic()))
            self.threads.add(threading.current_thread().name)
            self.committed_in.append((key, threading.current_thread().name))
        if key in self.fail_on:
            raise TransactionStateUnknown(f"commit of {key} failed")


def test_batches_commit_one_at_a_time_in_the_order_submitted() -> None:
    writer = RecordingWriter()
    pipeline = CommitPipeline(writer, "test")
    handed_back = [pipeline.submit(batch(key)) for key in (1, 2, 3)]
    handed_back.append(pipeline.drain())
    pipeline.close()

    assert [key for key, _, _ in writer.spans] == [1, 2, 3]
    for (_, _, ended), (_, began, _) in zip(writer.spans, writer.spans[1:], strict=False):
        assert began >= ended  # never two transactions at once
    # each batch comes back (committed) exactly once, in order, the first submit has none
    assert [b.last.key if b and b.last else None for b in handed_back] == [None, 1, 2, 3]
    assert writer.threads == {"commit-test_0"}  # not the caller's thread


class GatedWriter:
    """A commit that holds until the test opens the gate (or a deadline passes)."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.gate = threading.Event()
        self.finished = threading.Event()

    def commit(self, records: Sequence[Outgoing]) -> None:
        self.started.set()
        self.gate.wait(timeout=30)  # a synchronous submit would come back only after this
        self.finished.set()


def test_submit_returns_while_the_commit_runs() -> None:
    writer = GatedWriter()
    pipeline = CommitPipeline(writer, "test")
    pipeline.submit(batch(1))
    # back from submit with the commit still held: the caller reads on meanwhile
    assert not writer.finished.is_set()
    assert writer.started.wait(timeout=30) and pipeline.busy
    writer.gate.set()
    committed = pipeline.drain()
    assert committed is not None and writer.finished.is_set()
    assert not pipeline.busy
    pipeline.close()


def test_failed_commit_surfaces_at_the_next_submit_and_the_next_batch_never_starts() -> None:
    writer = RecordingWriter(fail_on=frozenset({2}))
    pipeline = CommitPipeline(writer, "test")
    pipeline.submit(batch(1))
    pipeline.submit(batch(2))
    with pytest.raises(TransactionStateUnknown, match="commit of 2 failed"):
        pipeline.submit(batch(3))
    assert pipeline.drain() is None  # nothing in flight after the failure
    pipeline.close()
    assert [key for key, _, _ in writer.spans] == [1, 2]  # 3 was never committed


def test_failed_commit_surfaces_at_drain() -> None:
    writer = RecordingWriter(fail_on=frozenset({1}))
    pipeline = CommitPipeline(writer, "test")
    pipeline.submit(batch(1))
    with pytest.raises(TransactionStateUnknown):
        pipeline.drain()
    pipeline.close()


def test_batch_gathers_pages_and_ends_with_its_checkpoint() -> None:
    one, two, three = (("events", KafkaRecord(value=key)) for key in (b"1", b"2", b"3"))
    definition = KafkaRecord(value=b"def", key=b"alarm-1")
    gathered = Batch()
    gathered.add([1, 2], [one, two], [])
    gathered.add([3], [three, ("defs", definition)], [definition])
    closed = gathered.close(Position(3, T0), ("checkpoints", KafkaRecord(value=b"cp")))
    assert closed.events == [1, 2, 3]
    topics = [topic for topic, _ in closed.records]
    assert topics == ["events", "events", "events", "defs", "checkpoints"]
    assert closed.definitions == [definition]
    assert closed.last == Position(3, T0)


def test_commit_in_the_callers_thread_waits_for_the_batch_in_flight_first() -> None:
    writer = RecordingWriter()
    pipeline = CommitPipeline(writer, "test")
    assert pipeline.submit(batch(1)) is None
    # both come back committed, oldest first; nothing is left in flight
    assert [b.last.key for b in pipeline.commit(batch(2)) if b.last] == [1, 2]
    assert [b.last.key for b in pipeline.commit(batch(3)) if b.last] == [3]
    assert pipeline.drain() is None
    pipeline.close()

    assert [key for key, _, _ in writer.spans] == [1, 2, 3]
    (_, _, first_ended), (_, second_began, _) = writer.spans[:2]
    assert second_began >= first_ended  # never two transactions at once
    assert [name for key, name in writer.committed_in][1:] == [threading.current_thread().name] * 2
