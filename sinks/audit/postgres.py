"""Audit storage in one PostgreSQL table (psycopg 3), indexed by time, type, entity, vCenter.

The primary key (topic, partition, offset) makes re-delivery a no-op. A batch is one
transaction that first takes an advisory lock for its partition and reads the chain's
head, so two writers of one partition (a rebalance overlap) never fork the chain. A
lost connection (a server restart) fails the batch, which the runtime retries; the next
attempt reconnects.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from sinks.audit.record import GENESIS, AuditRecord, chain

COLUMNS = (
    ("topic", "topic"), ("partition", "partition"), ("offset", "offset"), ("id", "id"),
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
CREATE INDEX IF NOT EXISTS {table_time} ON {table} (time);
CREATE INDEX IF NOT EXISTS {table_type} ON {table} (type, time);
CREATE INDEX IF NOT EXISTS {table_entity} ON {table} (entity, time);
CREATE INDEX IF NOT EXISTS {table_vcenter} ON {table} (vcenter_uuid, time);
"""


ALL_ROWS = sql.SQL("TRUE")
CHAIN_ORDER = sql.SQL('topic, partition, "offset"')


def row_to_record(row: dict[str, Any]) -> AuditRecord:
    return {name: row[column] for name, column in COLUMNS}


class AuditTable:
    def __init__(self, dsn: str, table: str = "vcstream_audit", timeout: float = 10) -> None:
        self._dsn = dsn
        self.table = table
        self._timeout = timeout
        # one connection per writer: batches of different partitions run concurrently,
        # and a connection carries one transaction at a time
        self._conns: dict[str, psycopg.AsyncConnection[dict[str, Any]]] = {}
        self._ident = sql.Identifier(table)

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
        names = {
            f"table_{suffix}": sql.Identifier(f"{self.table}_{suffix}_idx")
            for suffix in ("time", "type", "entity", "vcenter")
        }
        conn = await self.connection()
        async with conn.transaction():
            await conn.execute(sql.SQL(_DDL).format(table=self._ident, **names))

    async def append(
        self, topic: str, partition: int, records: Sequence[AuditRecord]
    ) -> tuple[int, str]:
        """Store the records not stored yet, chained; the partition's new head."""
        slot = f"{topic}/{partition}"
        conn = await self.connection(slot)
        try:
            async with conn.transaction():
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s))",
                    (f"{self.table}/{topic}/{partition}",),
                )
                cursor = await conn.execute(
                    sql.SQL(
                        'SELECT "offset", hash FROM {} WHERE topic = %s AND partition = %s '
                        'ORDER BY "offset" DESC LIMIT 1'
                    ).format(self._ident),
                    (topic, partition),
                )
                head = await cursor.fetchone()
                last_offset, last_hash = (head["offset"], head["hash"]) if head else (-1, GENESIS)
                fresh = [r for r in records if r["offset"] > last_offset]
                if not fresh:
                    return last_offset, last_hash
                linked = list(chain(fresh, last_hash))
                insert = sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT DO NOTHING").format(
                    self._ident,
                    sql.SQL(", ").join(sql.Identifier(column) for _, column in COLUMNS),
                    sql.SQL(", ").join(sql.Placeholder() for _ in COLUMNS),
                )
                async with conn.cursor() as cur:
                    await cur.executemany(
                        insert,
                        [tuple(r[name] for name, _ in COLUMNS) for r in linked],
                    )
                return linked[-1]["offset"], linked[-1]["hash"]
        except psycopg.OperationalError:
            await self._drop(slot)  # reconnect on the next attempt
            raise

    async def partitions(self) -> list[tuple[str, int]]:
        conn = await self.connection()
        cursor = await conn.execute(
            sql.SQL("SELECT DISTINCT topic, partition FROM {} ORDER BY 1, 2").format(self._ident)
        )
        return [(row["topic"], row["partition"]) for row in await cursor.fetchall()]

    async def rows(
        self,
        where: sql.Composable = ALL_ROWS,
        params: Sequence[Any] = (),
        order: sql.Composable = CHAIN_ORDER,
    ) -> AsyncIterator[AuditRecord]:
        """Records matching `where`, in stored-chain order unless `order` says otherwise."""
        conn = await self.connection()
        query = sql.SQL("SELECT * FROM {} WHERE {} ORDER BY {}").format(self._ident, where, order)
        async with conn.cursor(name="audit_rows") as cursor:
            await cursor.execute(query, params)
            async for row in cursor:
                yield row_to_record(row)
