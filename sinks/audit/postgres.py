"""Audit storage in one PostgreSQL table (psycopg 3), indexed by time, type, entity, vCenter.

The primary key (topic, partition, offset) makes re-delivery a no-op. A batch is one
transaction that takes an advisory lock for its partition, checks that the head the
caller holds is still stored (`ChainBroken` if that row is gone or differs), and adopts
rows another writer chained onto it meanwhile (a rebalance overlap), so the chain never
forks. A lost connection (a server restart) fails the batch, which the runtime retries;
the next attempt reconnects.

Seals: each batch also inserts its head into `<table>_seals`, so `verify` finds deleted
newest rows without Kafka. Grant the sink's role only INSERT and SELECT on both tables
so that whoever can delete audit rows is someone else, whose deletes the seals betray.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from sinks.audit.anchors import Anchor
from sinks.audit.record import AuditRecord, chain
from sinks.audit.store import EMPTY, AuditStore, ChainBroken, StoredRef

if TYPE_CHECKING:
    from sinks.audit.query import AuditQuery
    from sinks.audit.verify import Anchors, VerifyReport

COLUMNS = (
    ("topic", "topic"), ("partition", "partition"), ("offset", "offset"),
    ("hashVersion", "hash_version"), ("timestamp", "kafka_timestamp"), ("key", "key"),
    ("headerNames", "header_names"), ("headerValues", "header_values"), ("value", "value"),
    ("id", "id"),
    ("type", "type"), ("source", "source"), ("subject", "subject"), ("time", "time"),
    ("vcenterUuid", "vcenter_uuid"), ("entity", "entity"), ("entityName", "entity_name"),
    ("event", "event"), ("recordedAt", "recorded_at"), ("prevHash", "prev_hash"),
    ("hash", "hash"),
)  # fmt: skip

_DDL = """
CREATE TABLE IF NOT EXISTS {table} (
    topic text NOT NULL,
    partition integer NOT NULL,
    "offset" bigint NOT NULL,
    id text NOT NULL,
    type text NOT NULL,
    source text NOT NULL,
    subject text,
    time timestamptz NOT NULL,
    vcenter_uuid text NOT NULL,
    entity text,
    entity_name text,
    event text NOT NULL,
    recorded_at timestamptz NOT NULL,
    prev_hash text NOT NULL,
    hash text NOT NULL,
    PRIMARY KEY (topic, partition, "offset")
);
-- version 2 records keep the Kafka record's bytes; a table made before gains the
-- columns, and its rows (hash version 1) keep verifying as they are
ALTER TABLE {table} ADD COLUMN IF NOT EXISTS hash_version integer NOT NULL DEFAULT 1;
ALTER TABLE {table} ADD COLUMN IF NOT EXISTS kafka_timestamp bigint;
ALTER TABLE {table} ADD COLUMN IF NOT EXISTS key bytea;
ALTER TABLE {table} ADD COLUMN IF NOT EXISTS header_names text[];
ALTER TABLE {table} ADD COLUMN IF NOT EXISTS header_values bytea[];
ALTER TABLE {table} ADD COLUMN IF NOT EXISTS value bytea;
CREATE INDEX IF NOT EXISTS {table_time} ON {table} (time);
CREATE INDEX IF NOT EXISTS {table_type} ON {table} (type, time);
CREATE INDEX IF NOT EXISTS {table_entity} ON {table} (entity, time);
CREATE INDEX IF NOT EXISTS {table_vcenter} ON {table} (vcenter_uuid, time);
CREATE TABLE IF NOT EXISTS {seals} (
    topic text NOT NULL,
    partition integer NOT NULL,
    "offset" bigint NOT NULL,
    hash text NOT NULL,
    sealed_at timestamptz NOT NULL DEFAULT now(),
    -- the hash too: a second chain over the same offsets (a fork) is sealed beside the
    -- first, never in its place
    PRIMARY KEY (topic, partition, "offset", hash)
);
"""


ALL_ROWS = sql.SQL("TRUE")
CHAIN_ORDER = sql.SQL('topic, partition, "offset"')


def row_to_record(row: dict[str, Any]) -> AuditRecord:
    record = {name: row[column] for name, column in COLUMNS}
    # version 1 rows have no Kafka bytes: NULL arrays read as the Avro defaults
    record["headerNames"] = record["headerNames"] or []
    record["headerValues"] = [bytes(value) for value in record["headerValues"] or []]
    return record


def record_to_row(record: AuditRecord) -> tuple[Any, ...]:
    return tuple(record.get(name) for name, _ in COLUMNS)


class AuditTable(AuditStore):
    def __init__(self, dsn: str, table: str = "vcstream_audit", timeout: float = 10) -> None:
        self._dsn = dsn
        self.table = table
        self._timeout = timeout
        # one connection per writer: batches of different partitions run concurrently,
        # and a connection carries one transaction at a time
        self._conns: dict[str, psycopg.AsyncConnection[dict[str, Any]]] = {}
        self._ident = sql.Identifier(table)
        self._seals = sql.Identifier(f"{table}_seals")
        self._created = False
        self._create_lock = asyncio.Lock()
        self._unreadable: list[str] = []

    @property
    def dest(self) -> str:
        return f"audit table {self.table}"

    async def connection(self, slot: str = "reader") -> psycopg.AsyncConnection[dict[str, Any]]:
        conn = self._conns.get(slot)
        if conn is None or conn.closed or conn.broken:
            conn = self._conns[slot] = await psycopg.AsyncConnection.connect(
                self._dsn, connect_timeout=max(1, int(self._timeout)), row_factory=dict_row
            )
        return conn

    async def _drop(self, slot: str) -> None:
        conn = self._conns.pop(slot, None)
        if conn is not None:
            await conn.close()

    async def close(self) -> None:
        for slot in list(self._conns):
            await self._drop(slot)

    async def create(self) -> None:
        """The table, its indexes and seals (once; a database down at start is retried
        like any other delivery failure, so this runs on the first append)."""
        async with self._create_lock:
            if self._created:
                return
            names = {
                f"table_{suffix}": sql.Identifier(f"{self.table}_{suffix}_idx")
                for suffix in ("time", "type", "entity", "vcenter")
            }
            conn = await self.connection()
            async with conn.transaction():
                await conn.execute(
                    sql.SQL(_DDL).format(table=self._ident, seals=self._seals, **names)
                )
            self._created = True

    async def _one(self, query: sql.Composed, params: Sequence[Any]) -> dict[str, Any] | None:
        conn = await self.connection()
        try:
            cursor = await conn.execute(query, params)
            row: dict[str, Any] | None = await cursor.fetchone()
            return row
        except psycopg.errors.UndefinedTable:
            return None
        finally:
            await conn.rollback()  # read-only: end the transaction psycopg opened

    async def head(self, topic: str, partition: int) -> Anchor:
        row = await self._one(
            sql.SQL(
                'SELECT "offset", hash FROM {} WHERE topic = %s AND partition = %s '
                'ORDER BY "offset" DESC LIMIT 1'
            ).format(self._ident),
            (topic, partition),
        )
        return Anchor(row["offset"], row["hash"]) if row else EMPTY

    async def holds(self, topic: str, partition: int, anchor: Anchor) -> bool:
        row = await self._one(
            sql.SQL(
                'SELECT hash FROM {} WHERE topic = %s AND partition = %s AND "offset" = %s'
            ).format(self._ident),
            (topic, partition, anchor.offset),
        )
        return row is not None and row["hash"] == anchor.hash

    async def newest_seals(self) -> dict[tuple[str, int], Anchor]:
        conn = await self.connection()
        query = sql.SQL(
            'SELECT DISTINCT ON (topic, partition) topic, partition, "offset", hash FROM {} '
            'ORDER BY topic, partition, "offset" DESC, sealed_at DESC'
        ).format(self._seals)
        try:
            cursor = await conn.execute(query)
            rows = await cursor.fetchall()
        except psycopg.errors.UndefinedTable:  # a table of a release without seals
            rows = []
        await conn.rollback()
        return {(r["topic"], r["partition"]): Anchor(r["offset"], r["hash"]) for r in rows}

    async def append(
        self, topic: str, partition: int, records: Sequence[AuditRecord], prev: Anchor
    ) -> Anchor:
        if not self._created:
            await self.create()
        slot = f"{topic}/{partition}"
        conn = await self.connection(slot)
        try:
            async with conn.transaction():
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s))",
                    (f"{self.table}/{topic}/{partition}",),
                )
                head = await self._check_head(conn, topic, partition, prev)
                fresh = [r for r in records if r["offset"] > head.offset]
                if not fresh:
                    return head
                linked = list(chain(fresh, head.hash))
                insert = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                    self._ident,
                    sql.SQL(", ").join(sql.Identifier(column) for _, column in COLUMNS),
                    sql.SQL(", ").join(sql.Placeholder() for _ in COLUMNS),
                )
                async with conn.cursor() as cur:
                    await cur.executemany(insert, [record_to_row(r) for r in linked])
                new = Anchor(linked[-1]["offset"], linked[-1]["hash"])
                await conn.execute(
                    sql.SQL(
                        'INSERT INTO {} (topic, partition, "offset", hash) VALUES (%s, %s, %s, %s) '
                        "ON CONFLICT DO NOTHING"
                    ).format(self._seals),
                    (topic, partition, new.offset, new.hash),
                )
                return new
        except psycopg.OperationalError:
            await self._drop(slot)  # reconnect on the next attempt
            raise

    async def _check_head(
        self,
        conn: psycopg.AsyncConnection[dict[str, Any]],
        topic: str,
        partition: int,
        prev: Anchor,
    ) -> Anchor:
        """The head to chain onto: `prev`, or what another writer chained onto it."""
        cursor = await conn.execute(
            sql.SQL(
                'SELECT "offset", hash, prev_hash FROM {} WHERE topic = %s AND partition = %s '
                'AND "offset" >= %s ORDER BY "offset"'
            ).format(self._ident),
            (topic, partition, prev.offset),
        )
        rows = await cursor.fetchall()
        if prev.offset >= 0:
            if not rows or rows[0]["offset"] != prev.offset:
                raise ChainBroken(
                    topic, partition, f"row {prev.offset} (the chain head) is no longer stored"
                )
            if rows[0]["hash"] != prev.hash:
                raise ChainBroken(topic, partition, f"row {prev.offset} differs from the head")
            rows = rows[1:]
        expected = prev.hash
        for row in rows:  # rows stored beyond the head: another writer's, on the same chain
            if row["prev_hash"] != expected:
                raise ChainBroken(
                    topic, partition, f"row {row['offset']} forks the chain after {prev.offset}"
                )
            expected = row["hash"]
        return Anchor(rows[-1]["offset"], rows[-1]["hash"]) if rows else prev

    async def partitions(self) -> list[tuple[str, int]]:
        conn = await self.connection()
        try:
            cursor = await conn.execute(
                sql.SQL("SELECT DISTINCT topic, partition FROM {} ORDER BY 1, 2").format(
                    self._ident
                )
            )
            rows = await cursor.fetchall()
        except psycopg.errors.UndefinedTable:
            rows = []
        await conn.rollback()
        return [(row["topic"], row["partition"]) for row in rows]

    async def rows(
        self,
        where: sql.Composable = ALL_ROWS,
        params: Sequence[Any] = (),
        order: sql.Composable = CHAIN_ORDER,
    ) -> AsyncIterator[AuditRecord]:
        """Records matching `where`, in stored-chain order unless `order` says otherwise."""
        conn = await self.connection()
        query = sql.SQL("SELECT * FROM {} WHERE {} ORDER BY {}").format(self._ident, where, order)
        try:
            async with conn.cursor(name="audit_rows") as cursor:
                await cursor.execute(query, params)
                async for row in cursor:
                    yield row_to_record(row)
        except psycopg.errors.UndefinedTable:
            await conn.rollback()

    async def verify(self, anchors: Anchors | None = None) -> VerifyReport:
        from sinks.audit.verify import verify_table

        return await verify_table(self, anchors)

    async def query(self, query: AuditQuery) -> AsyncIterator[AuditRecord]:
        from sinks.audit.query import query_table

        async for record in query_table(self, query):
            yield record  # the primary key keeps each (topic, partition, offset) once

    async def refs(self, topic: str, partition: int, start: int, stop: int) -> list[StoredRef]:
        conn = await self.connection()
        query = sql.SQL(_REFS).format(table=self._ident)
        try:
            cursor = await conn.execute(query, (topic, partition, start, stop))
            rows = await cursor.fetchall()
        except psycopg.errors.UndefinedTable:
            await conn.rollback()
            note = f"table {self.table} does not exist: nothing was stored"
            if note not in self._unreadable:
                self._unreadable.append(note)
            return []
        await conn.rollback()
        return [StoredRef(partition, row["offset"], row["id"]) for row in rows]

    @property
    def unreadable(self) -> list[str]:
        return self._unreadable


_REFS = """SELECT "offset", id FROM {table}
WHERE topic = %s AND partition = %s AND "offset" >= %s AND "offset" < %s
ORDER BY "offset" """
