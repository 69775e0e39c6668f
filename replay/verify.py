"""`audit verify --against-topic`: is every offset of a range in the audit store, once?

The topic is the reference. For each record of the range that the audit sink would
store (it decodes, and its type matches the sink's `types` and any `--type`), the store
must hold exactly one row at that topic/partition/offset, with the same event id. The
result lists what is missing, duplicated, stored under another id, or stored although
the topic has no such record to store; and a checksum over what the store holds in the
range, computed like the replay report's, so a replay's report and a verify of the
same range can be compared.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from replay.plan import Plan
from replay.reader import RangeReader
from replay.spec import ReplaySpec
from replay.tally import checksum_hex, record_digest
from schemas import InvalidRecord, decode
from vcstream.settings.kafka import KafkaSettings

MAX_LISTED = 50


@dataclass(frozen=True, slots=True)
class StoredRef:
    """Where an audit row says its record came from, and the event's id."""

    partition: int
    offset: int
    event_id: str


class AuditStoreView(Protocol):
    """What verify needs from an audit backend (files or PostgreSQL)."""

    def refs(self, topic: str, partition: int, start: int, stop: int) -> Iterable[StoredRef]:
        """Every row of `topic`/`partition` with start <= offset < stop, duplicates too."""
        ...


@dataclass
class PartitionCheck:
    partition: int
    start: int
    stop: int
    expected: int = 0
    present: int = 0
    missing: list[int] = field(default_factory=list)
    duplicated: list[int] = field(default_factory=list)
    wrong_id: list[int] = field(default_factory=list)
    unexpected: list[int] = field(default_factory=list)
    checksum: int = 0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.duplicated or self.wrong_id or self.unexpected)

    def to_json(self) -> dict[str, Any]:
        def listed(offsets: list[int]) -> dict[str, Any]:
            return {"count": len(offsets), "offsets": offsets[:MAX_LISTED]}

        return {
            "partition": self.partition,
            "range": {"from": self.start, "to": self.stop - 1},
            "expected": self.expected,
            "presentOnce": self.present,
            "missing": listed(self.missing),
            "duplicated": listed(self.duplicated),
            "wrongId": listed(self.wrong_id),
            "unexpected": listed(self.unexpected),
            "checksum": checksum_hex(self.checksum),
        }


def compare(
    check: PartitionCheck, expected: dict[int, str], stored: Iterable[StoredRef]
) -> PartitionCheck:
    """Fill `check` from the topic's expected offset -> id and the store's rows."""
    seen: Counter[int] = Counter()
    ids: dict[int, str] = {}
    for ref in stored:
        seen[ref.offset] += 1
        ids.setdefault(ref.offset, ref.event_id)
        check.checksum += record_digest(ref.partition, ref.offset, ref.event_id)
    check.expected = len(expected)
    for offset in sorted(expected):
        times = seen.get(offset, 0)
        if times == 0:
            check.missing.append(offset)
        elif ids[offset] != expected[offset]:
            check.wrong_id.append(offset)
        elif times > 1:
            check.duplicated.append(offset)
        else:
            check.present += 1
    check.unexpected.extend(o for o in sorted(seen) if o not in expected)
    return check


def expected_in_topic(
    kafka: KafkaSettings, plan: Plan, accepts: Callable[[str], bool]
) -> dict[int, dict[int, str]]:
    """partition -> offset -> event id of every record the audit sink would store."""
    reader = RangeReader(kafka, plan, {})
    found: dict[int, dict[int, str]] = {r.partition: {} for r in plan.ranges}
    try:
        for batch in reader.batches():
            for record in batch:
                assert record.partition is not None and record.offset is not None
                try:
                    event = decode(record)
                except InvalidRecord:
                    continue  # a poison record goes to the dead-letter topic, not audit
                if accepts(str(event.get_type())):
                    found[record.partition][record.offset] = str(event.get_id())
    finally:
        reader.close()
    return found


def verify_against_topic(
    kafka: KafkaSettings,
    spec: ReplaySpec,
    plan: Plan,
    store: AuditStoreView,
    accepts: Callable[[str], bool],
) -> dict[str, Any]:
    """The verification report (JSON-ready); `ok` is True when the store is exact."""
    expected = expected_in_topic(kafka, plan, lambda t: spec.matches_type(t) and accepts(t))
    checks = [
        compare(
            PartitionCheck(r.partition, r.start, r.stop),
            expected[r.partition],
            store.refs(plan.topic, r.partition, r.start, r.stop),
        )
        for r in plan.ranges
    ]
    return {
        "topic": plan.topic,
        "ok": all(c.ok for c in checks),
        "partitions": [c.to_json() for c in checks],
        "checksum": checksum_hex(sum(c.checksum for c in checks)),
    }


def verify_text(report: dict[str, Any]) -> str:
    verdict = "OK" if report["ok"] else "MISMATCH"
    store = report.get("store", "audit store")
    lines = [f"{store} against {report['topic']}: {verdict}"]
    lines += [f"unreadable: {what}" for what in report.get("unreadable", [])]
    for p in report["partitions"]:
        lines.append(
            f"partition {p['partition']} offsets {p['range']['from']}..{p['range']['to']}: "
            f"expected {p['expected']}, present once {p['presentOnce']}, "
            f"missing {p['missing']['count']}, duplicated {p['duplicated']['count']}, "
            f"wrong id {p['wrongId']['count']}, unexpected {p['unexpected']['count']}"
        )
        for kind in ("missing", "duplicated", "wrongId", "unexpected"):
            if p[kind]["count"]:
                shown = ", ".join(map(str, p[kind]["offsets"]))
                more = p[kind]["count"] - len(p[kind]["offsets"])
                lines.append(f"  {kind}: {shown}" + (f" (+{more} more)" if more else ""))
    lines.append(f"checksum (partition, offset, id of stored records): {report['checksum']}")
    return "\n".join(lines)
