"""What an audit store holds for a range of a topic: the readers behind
`vcstream audit verify --against-topic`, one per backend of `sinks.audit`.

Both answer `refs(topic, partition, start, stop)`: every stored row in the range,
duplicates included (a store that was tampered with, or written by something that
bypassed the sink's idempotence, can hold an offset twice). Only the offset and the
event id are read: the comparison needs nothing else, and the event JSON is the bulk
of every row.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg import sql

from replay.verify import StoredRef
from sinks.audit.files import AuditFiles, read_file
from sinks.audit.postgres import AuditTable


class FilesStoreView:
    """Avro files of `sinks.audit.files`; a file that cannot be read is listed in
    `unreadable` (its records then show up as missing), never skipped silently."""

    def __init__(self, store: AuditFiles) -> None:
        self.store = store
        self.unreadable: list[str] = []

    def refs(self, topic: str, partition: int, start: int, stop: int) -> Iterator[StoredRef]:
        for audit_file in self.store.files(topic, partition):
            # the name says which offsets a file holds; files wholly outside are not opened
            if audit_file.last < start or audit_file.first >= stop:
                continue
            try:
                records = list(read_file(audit_file.path))
            except Exception as exc:  # fastavro raises many types for damaged files
                name = audit_file.path.relative_to(self.store.root)
                self.unreadable.append(f"{name}: {exc}")
                continue
            for record in records:
                offset = record["offset"]
                if start <= offset < stop and record["partition"] == partition:
                    yield StoredRef(partition, offset, record["id"])


_REFS = """SELECT "offset", id FROM {table}
WHERE topic = %s AND partition = %s AND "offset" >= %s AND "offset" < %s
ORDER BY "offset" """


class TableStoreView:
    """The PostgreSQL table of `sinks.audit.postgres`, read through its connection."""

    def __init__(self, table: AuditTable) -> None:
        self.table = table
        self.unreadable: list[str] = []
        self._loop = asyncio.Runner()

    def refs(self, topic: str, partition: int, start: int, stop: int) -> Iterator[StoredRef]:
        rows = self._loop.run(self._fetch(topic, partition, start, stop))
        return (StoredRef(partition, row["offset"], row["id"]) for row in rows)

    async def _fetch(self, topic: str, partition: int, start: int, stop: int) -> list[Any]:
        conn = await self.table.connection()
        query = sql.SQL(_REFS).format(table=sql.Identifier(self.table.table))
        try:
            cursor = await conn.execute(query, (topic, partition, start, stop))
            rows = await cursor.fetchall()
        except psycopg.errors.UndefinedTable:
            await conn.rollback()
            note = f"table {self.table.table} does not exist: nothing was stored"
            if note not in self.unreadable:
                self.unreadable.append(note)
            return []
        await conn.rollback()  # read-only: end the transaction psycopg opened
        return rows

    def close(self) -> None:
        try:
            self._loop.run(self.table.close())
        finally:
            self._loop.close()
