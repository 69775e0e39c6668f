"""What an audit store holds for a range of a topic: the reader behind
`vcstream audit verify --against-topic`, over `sinks.audit.store.AuditStore`.

`refs(topic, partition, start, stop)` gives every stored row in the range, duplicates
included (a store that was tampered with, or written by something that bypassed the
sink's idempotence, can hold an offset twice). Only the offset and the event id are
read: the comparison needs nothing else. What could not be read (a damaged file, a
missing table) is listed in `unreadable` (its records then show up as missing), never
skipped silently.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from replay.verify import StoredRef
from sinks.audit.store import AuditStore


class StoreView:
    def __init__(self, store: AuditStore) -> None:
        self.store = store
        self._loop = asyncio.Runner()

    @property
    def unreadable(self) -> list[str]:
        return self.store.unreadable

    def refs(self, topic: str, partition: int, start: int, stop: int) -> Iterator[StoredRef]:
        found = self._loop.run(self.store.refs(topic, partition, start, stop))
        return (StoredRef(ref.partition, ref.offset, ref.id) for ref in found)

    def close(self) -> None:
        try:
            self._loop.run(self.store.close())
        finally:
            self._loop.close()
