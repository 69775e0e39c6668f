"""The audit sink: append-only, idempotent, tamper-evident storage of every event.

Backends: `files` (Avro Object Container Files, `sinks.audit.files`) or `postgres`
(one table, `sinks.audit.postgres`). Re-delivery of a record already stored, by
(topic, partition, offset), stores nothing: exactly once in audit storage.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import ClassVar

from sinks.audit.anchors import Anchor
from sinks.audit.files import AuditFiles
from sinks.audit.postgres import AuditTable
from sinks.audit.record import AuditRecord, audit_record
from sinks.base import Outcome, Sink, SinkEvent
from vcstream.settings.sinks import AuditSinkSettings


class AuditSink(Sink):
    kind: ClassVar[str] = "audit"
    settings: AuditSinkSettings

    def __init__(self, settings: AuditSinkSettings, name: str | None = None) -> None:
        super().__init__(settings, name)
        self.files: AuditFiles | None = None
        self.table: AuditTable | None = None
        self._table_lock = asyncio.Lock()
        self._table_ready = False
        self._heads: dict[tuple[str, int], Anchor] = {}
        if settings.backend == "files":
            self.files = AuditFiles(settings.files.directory, settings.files.max_file_bytes)
        else:
            assert settings.postgres is not None
            self.table = AuditTable(
                settings.postgres.dsn.get_secret_value(),
                settings.postgres.table,
                timeout=settings.delivery.timeout.total_seconds(),
            )

    @property
    def dest(self) -> str:
        if self.files is not None:
            return f"audit files {self.files.root}"
        assert self.table is not None
        return f"audit table {self.table.table}"

    async def start(self) -> None:
        if self.files is not None:
            await asyncio.to_thread(self.files.recover)
        # the table is created on the first delivery, so a database that is down at
        # start is retried like any other delivery failure

    async def close(self) -> None:
        if self.table is not None:
            await self.table.close()

    async def deliver(self, batch: Sequence[SinkEvent]) -> Sequence[Outcome]:
        now = datetime.now(UTC)
        records = [audit_record(item, now) for item in batch]
        topic, partition = records[0]["topic"], records[0]["partition"]
        timeout = self.settings.delivery.timeout.total_seconds()
        async with asyncio.timeout(timeout):
            if self.files is not None:
                head = await asyncio.to_thread(self.files.append, topic, partition, records)
            else:
                assert self.table is not None
                head = await self._append_table(topic, partition, records)
        self._heads[(topic, partition)] = Anchor(*head)
        return [None] * len(batch)

    def commit_metadata(self, topic: str, partition: int) -> str | None:
        head = self._heads.get((topic, partition))
        return head.text() if head is not None else None

    async def _append_table(
        self, topic: str, partition: int, records: list[AuditRecord]
    ) -> tuple[int, str]:
        assert self.table is not None
        async with self._table_lock:  # concurrent first batches create it once
            if not self._table_ready:
                await self.table.create()
                self._table_ready = True
        return await self.table.append(topic, partition, records)
