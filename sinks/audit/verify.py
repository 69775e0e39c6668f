"""`vcstream audit verify`: walk each partition's hash chain and name what is wrong.

Per partition, in stored order, each record's hash is recomputed (a mismatch: the
record was **modified**) and its `prevHash` compared with the hash of the record
stored before it: a `prevHash` that belongs to another stored record means records
were **reordered**; one that belongs to no stored record means records were
**deleted** before it. For files, a file that cannot be read is **corrupt**, and a
file whose name disagrees with the offsets inside lost records at its start or end.

Deleting the newest records of a partition leaves a shorter, valid chain: given the
chain heads the sink committed to Kafka with its offsets (`sinks.audit.anchors`), each
must still be stored, with the same hash, or the records up to it were **deleted**.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from psycopg import sql

from sinks.audit.anchors import Anchor
from sinks.audit.files import AuditFiles, read_file
from sinks.audit.postgres import AuditTable
from sinks.audit.record import GENESIS, AuditRecord, record_hash

ProblemKind = Literal["modified", "deleted", "reordered", "corrupt"]


@dataclass(frozen=True)
class Problem:
    kind: ProblemKind
    where: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.where}: {self.detail}"


@dataclass
class VerifyReport:
    records: int = 0
    partitions: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class _Link:
    where: str
    offset: int
    prev_hash: str
    hash: str
    intact: bool


def verify_chain(entries: Iterable[tuple[str, AuditRecord]]) -> list[Problem]:
    """Problems in one partition's records, given in stored order as (location, record)."""
    links = [
        _Link(where, r["offset"], r["prevHash"], r["hash"], record_hash(r) == r["hash"])
        for where, r in entries
    ]
    stored = {link.hash for link in links}
    problems: list[Problem] = []
    previous_hash, previous_offset = GENESIS, -1
    for link in links:
        if not link.intact:
            problems.append(Problem("modified", link.where, "content does not match its hash"))
        if link.offset <= previous_offset:
            problems.append(
                Problem("reordered", link.where, f"offset {link.offset} after {previous_offset}")
            )
        elif link.prev_hash != previous_hash:
            if link.prev_hash in stored:
                problems.append(
                    Problem("reordered", link.where, "not stored after the record it follows")
                )
            else:
                problems.append(Problem("deleted", link.where, "the record before it is missing"))
        previous_hash, previous_offset = link.hash, link.offset
    return problems


Anchors = Mapping[tuple[str, int], Anchor]


def verify_anchor(
    where: str, entries: list[tuple[str, AuditRecord]], anchor: Anchor | None
) -> list[Problem]:
    """Whether the chain head Kafka kept for this partition is still stored, unchanged."""
    if anchor is None:
        return []
    for location, record in entries:
        if record["offset"] == anchor.offset:
            if record["hash"] == anchor.hash:
                return []
            detail = "differs from the chain head committed to Kafka for this offset"
            return [Problem("modified", location, detail)]
    newest = max((record["offset"] for _, record in entries), default=None)
    stored = "nothing" if newest is None else f"up to offset {newest}"
    detail = f"the sink stored up to offset {anchor.offset} and committed that; {stored} is left"
    return [Problem("deleted", where, detail)]


def _unstored(anchors: Anchors, seen: set[tuple[str, int]]) -> list[Problem]:
    return [
        problem
        for (topic, partition), anchor in sorted(anchors.items())
        if (topic, partition) not in seen
        for problem in verify_anchor(f"{topic}[{partition}]", [], anchor)
    ]


def verify_files(store: AuditFiles, anchors: Anchors | None = None) -> VerifyReport:
    report = VerifyReport()
    anchors = anchors or {}
    for topic, partition in store.partitions():
        report.partitions += 1
        entries: list[tuple[str, AuditRecord]] = []
        for audit_file in store.files(topic, partition):
            name = str(audit_file.path.relative_to(store.root))
            try:
                records = list(read_file(audit_file.path))
            except Exception as exc:  # fastavro raises many types for damaged files
                report.problems.append(Problem("corrupt", name, f"unreadable: {exc}"))
                continue
            offsets = [r["offset"] for r in records]
            if not offsets or (min(offsets), max(offsets)) != (audit_file.first, audit_file.last):
                held = f"{min(offsets)}-{max(offsets)}" if offsets else "nothing"
                report.problems.append(
                    Problem(
                        "deleted",
                        name,
                        f"name says offsets {audit_file.first}-{audit_file.last}, holds {held}",
                    )
                )
            entries += [(f"{name} (offset {r['offset']})", r) for r in records]
        report.records += len(entries)
        report.problems += verify_chain(entries)
        report.problems += verify_anchor(
            f"{topic}[{partition}]", entries, anchors.get((topic, partition))
        )
    report.problems += _unstored(anchors, set(store.partitions()))
    return report


async def verify_table(table: AuditTable, anchors: Anchors | None = None) -> VerifyReport:
    report = VerifyReport()
    anchors = anchors or {}
    stored = await table.partitions()
    for topic, partition in stored:
        report.partitions += 1
        entries = [
            (f"{table.table} row {topic}/{partition}/{r['offset']}", r)
            async for r in table.rows(sql.SQL("topic = %s AND partition = %s"), (topic, partition))
        ]
        report.records += len(entries)
        report.problems += verify_chain(entries)
        report.problems += verify_anchor(
            f"{topic}[{partition}]", entries, anchors.get((topic, partition))
        )
    report.problems += _unstored(anchors, set(stored))
    return report
