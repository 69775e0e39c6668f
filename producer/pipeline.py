"""One transaction in flight while the next page is read: the commit overlaps the read.

A Kafka transaction spends most of its time waiting for the broker (acks, then the
transaction markers), and reading a page spends most of its time waiting for the
vCenter and decoding SOAP. Done one after the other they add up; here a batch is
committed on a thread of its own while the worker reads and encodes the next one.

What the guarantees need, and how they are kept:
- in order: one thread commits, one batch at a time, in the order submitted; a batch
  starts only after the previous one committed;
- exactly once: each batch carries its own checkpoint in the same transaction, and the
  worker advances its position only when `submit`/`drain` hand a batch back committed;
  a batch read ahead of a failed commit is dropped with the collector, which is
  recreated from the last committed position;
- one user of the transactional producer at a time: nothing else touches the writer
  while a batch is in flight, and `drain` (also on every error path) waits for it.

A worker that has caught up commits in its own thread instead (`commit`): it has nothing
to read until the commit interval has passed, so there is nothing to overlap.

While a commit is slow, the worker keeps reading and gathers the pages into the next
batch (up to MAX_BATCH_EVENTS), so transactions grow with the broker's latency instead
of the backlog growing: the producer keeps up as long as a page can be read faster than
events arrive.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from producer.position import Position
from producer.writer import Outgoing
from schemas.record import KafkaRecord

# events per transaction at most: vcsim keeps about 1,000 events, so a producer that
# needs bigger transactions than that has lost events already
MAX_BATCH_EVENTS = 1000


@dataclass
class Batch:
    """The records of one transaction, gathered page by page, then its checkpoint."""

    events: list[Any] = field(default_factory=list)  # pyVmomi events, oldest first
    records: list[Outgoing] = field(default_factory=list)  # events and alarm definitions
    definitions: list[KafkaRecord] = field(default_factory=list)  # alarm definitions
    last: Position | None = None  # the checkpoint, once `close`d
    commit_ms: float = 0.0

    def add(
        self, events: list[Any], records: list[Outgoing], definitions: list[KafkaRecord]
    ) -> None:
        self.events += events
        self.records += records
        self.definitions += definitions

    def close(self, last: Position, checkpoint: Outgoing) -> Batch:
        """Ends the batch with its checkpoint: the last record of the transaction."""
        self.last = last
        self.records.append(checkpoint)
        return self


class Committer(Protocol):
    """Writes records in one transaction and returns once it committed (TransactionalWriter)."""

    def commit(self, records: Sequence[Outgoing]) -> None: ...


class CommitPipeline:
    """Commits batches on one background thread, at most one in flight."""

    def __init__(self, writer: Committer, name: str) -> None:
        self._writer = writer
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"commit-{name}")
        self._in_flight: tuple[Future[None], Batch] | None = None

    @property
    def busy(self) -> bool:
        """A batch is still being committed."""
        return self._in_flight is not None and not self._in_flight[0].done()

    def submit(self, batch: Batch) -> Batch | None:
        """Start committing `batch`, once the batch before it has committed.

        Returns that previous batch (now committed), or None. Raises what its commit
        raised (then `batch` is not started).
        """
        previous = self.drain()
        self._in_flight = (self._executor.submit(self._commit, batch), batch)
        return previous

    def commit(self, batch: Batch) -> list[Batch]:
        """Commit `batch` in the caller's thread, after the batch in flight; return both,
        committed, oldest first.

        For a caller with nothing to read meanwhile (caught up: it waits for the commit
        interval next): handing the batch to the commit thread would cost that thread's
        wake-ups and a future, and overlap nothing.
        """
        previous = self.drain()
        self._commit(batch)
        return [batch] if previous is None else [previous, batch]

    def drain(self) -> Batch | None:
        """Wait for the batch in flight; return it committed, or raise its error."""
        if self._in_flight is None:
            return None
        future, batch = self._in_flight
        self._in_flight = None
        future.result()
        return batch

    def close(self) -> None:
        """Stop the commit thread; call after `drain`, or when the batch no longer matters."""
        self._executor.shutdown(wait=True)

    def _commit(self, batch: Batch) -> None:
        began = time.perf_counter()
        self._writer.commit(batch.records)
        batch.commit_ms = (time.perf_counter() - began) * 1000
