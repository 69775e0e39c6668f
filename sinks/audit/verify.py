"""`vcstream audit verify`: walk each partition's hash chain and name what is wrong.

Per partition, in stored order, each record's hash is recomputed (a mismatch: the
record was **modified**) and its `prevHash` compared with the hash of the record
stored before it: a `prevHash` that belongs to another stored record means records
were **reordered**; one that belongs to no stored record means records were
**deleted** before it. For files, a file that cannot be read is **corrupt**, and a
file whose name disagrees with the offsets inside lost records at its start or end.

Deleting the newest records of a partition leaves a shorter, valid chain. Two heads
kept apart from the chain betray it: the newest **seal** the store wrote with each
durable file or batch (a seal log beside the files, a seals table beside the rows), read
without Kafka; and, when Kafka can be read, the chain heads the sink committed with its
offsets (`sinks.audit.anchors`). Each must still be stored, with the same hash, or the
records up to it were **deleted** (a different hash: **modified**, a forked chain).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from sinks.audit.anchors import Anchor
from sinks.audit.record import GENESIS, AuditRecord, UnknownHashVersion, record_hash

if TYPE_CHECKING:
    from sinks.audit.files import AuditFiles
    from sinks.audit.postgres import AuditTable

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
        _Link(where, r["offset"], r["prevHash"], r["hash"], _intact(r)) for where, r in entries
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


def _intact(record: AuditRecord) -> bool:
    try:
        return bool(record_hash(record) == record["hash"])
    except (UnknownHashVersion, TypeError):
        return False  # a version or a field no release writes: not what the sink stored


Anchors = Mapping[tuple[str, int], Anchor]


def verify_anchor(
    where: str,
    entries: list[tuple[str, AuditRecord]],
    anchor: Anchor | None,
    kept: str = "committed that",
    by: str = "the chain head committed to Kafka",
) -> list[Problem]:
    """Whether a head kept apart from the chain (Kafka's, or a seal) is still stored."""
    if anchor is None:
        return []
    for location, record in entries:
        if record["offset"] == anchor.offset:
            if record["hash"] == anchor.hash:
                return []
            detail = f"differs from {by} for this offset (a forked or replaced chain)"
            return [Problem("modified", location, detail)]
    newest = max((record["offset"] for _, record in entries), default=None)
    stored = "nothing" if newest is None else f"up to offset {newest}"
    detail = f"the sink stored up to offset {anchor.offset} and {kept}; {stored} is left"
    if newest is not None and newest < anchor.offset:
        detail += f" (offsets {newest + 1}..{anchor.offset} missing)"
    return [Problem("deleted", where, detail)]


def verify_seal(
    where: str, entries: list[tuple[str, AuditRecord]], seal: Anchor | None
) -> list[Problem]:
    return verify_anchor(where, entries, seal, "sealed that", "the seal written with it")


def _kept_heads(
    where: str,
    entries: list[tuple[str, AuditRecord]],
    seal: Anchor | None,
    anchor: Anchor | None,
) -> list[Problem]:
    """The seal's verdict, and Kafka's where it says more (a newer head, or the seal's
    was fine): one loss is reported once."""
    problems = verify_seal(where, entries, seal)
    if not problems or (anchor is not None and seal is not None and anchor.offset > seal.offset):
        problems += verify_anchor(where, entries, anchor)
    return problems


def _unstored(anchors: Anchors, seen: set[tuple[str, int]]) -> list[Problem]:
    return [
        problem
        for (topic, partition), anchor in sorted(anchors.items())
        if (topic, partition) not in seen
        for problem in verify_anchor(f"{topic}[{partition}]", [], anchor)
    ]


def verify_files(store: AuditFiles, anchors: Anchors | None = None) -> VerifyReport:
    from sinks.audit.file_layout import read_file

    report = VerifyReport()
    anchors = anchors or {}
    stored = store.stored_partitions()
    for topic, partition in sorted(set(stored) | set(store.sealed_partitions())):
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
        seal = store.newest_seal(topic, partition)
        sealed = Anchor(seal["offset"], seal["hash"]) if seal is not None else None
        report.problems += _kept_heads(
            f"{topic}[{partition}]", entries, sealed, anchors.get((topic, partition))
        )
    report.problems += _unstored(anchors, set(stored) | set(store.sealed_partitions()))
    return report


async def verify_table(table: AuditTable, anchors: Anchors | None = None) -> VerifyReport:
    from psycopg import sql

    report = VerifyReport()
    anchors = anchors or {}
    stored = await table.partitions()
    seals = await table.newest_seals()
    for topic, partition in sorted(set(stored) | set(seals)):
        report.partitions += 1
        entries = [
            (f"{table.table} row {topic}/{partition}/{r['offset']}", r)
            async for r in table.rows(sql.SQL("topic = %s AND partition = %s"), (topic, partition))
        ]
        report.records += len(entries)
        report.problems += verify_chain(entries)
        report.problems += _kept_heads(
            f"{topic}[{partition}]",
            entries,
            seals.get((topic, partition)),
            anchors.get((topic, partition)),
        )
    report.problems += _unstored(anchors, set(stored) | set(seals))
    return report
