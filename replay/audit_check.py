"""`vcstream audit verify --against-topic T --from X --to Y`: the whole check, from the
command's words to the verdict.

`--from` and `--to` take what replay takes, in one option each, so a replay's range is
verified with the same words: an offset (`1200`, or `0:1200` for one partition,
inclusive), or an ISO 8601 time (half-open: from <= time < to). Without `--from` the
range starts at the earliest retained record, without `--to` it ends at the last
stable offset now.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from confluent_kafka.admin import AdminClient

from replay.errors import ReplayUsageError
from replay.plan import OffsetOracle, plan_client_config, resolve
from replay.spec import OffsetBound, ReplaySpec, parse_offset, parse_time
from replay.verify import verify_against_topic
from vcstream.settings import Settings


def _offset_or_time(text: str, option: str) -> OffsetBound | Any:
    try:
        return parse_offset(text, option)
    except ReplayUsageError:
        pass
    try:
        return parse_time(text, option)
    except ReplayUsageError:
        raise ReplayUsageError(
            f"{option} {text!r}: expected an offset (1200 or PARTITION:OFFSET, e.g. 0:1200) "
            "or an ISO 8601 time (e.g. 2026-11-22T20:00:00Z)"
        ) from None


def range_spec(
    topic: str,
    start: Sequence[str] = (),
    stop: Sequence[str] = (),
    partitions: Sequence[int] = (),
    types: Sequence[str] = (),
) -> ReplaySpec:
    """The range to verify as a ReplaySpec (offsets and times, not mixed per side)."""
    starts = [_offset_or_time(text, "--from") for text in start]
    stops = [_offset_or_time(text, "--to") for text in stop]
    for option, bounds in (("--from", starts), ("--to", stops)):
        times = [b for b in bounds if not isinstance(b, OffsetBound)]
        if times and len(bounds) > 1:
            raise ReplayUsageError(f"{option}: give one time, or offsets (one per partition)")
    from_time = starts[0] if starts and not isinstance(starts[0], OffsetBound) else None
    to_time = stops[0] if stops and not isinstance(stops[0], OffsetBound) else None
    return ReplaySpec(
        topic=topic,
        from_offsets=tuple(b for b in starts if isinstance(b, OffsetBound)),
        from_time=from_time,
        from_beginning=not starts,
        to_offsets=tuple(b for b in stops if isinstance(b, OffsetBound)),
        to_time=to_time,
        partitions=tuple(partitions),
        type_globs=tuple(types),
    )


def verify_audit_store(settings: Settings, spec: ReplaySpec) -> dict[str, Any]:
    """The report of `replay.verify` for the configured audit store; `ok` is the verdict.

    Raises ReplayUsageError (stating the available range) for a range the topic cannot
    give, before the store is read.
    """
    from replay.audit_stores import StoreView
    from sinks.audit.store import open_store
    from sinks.delivery import type_matcher

    plan = resolve(spec, OffsetOracle(AdminClient(plan_client_config(settings.kafka)), spec.topic))
    audit = settings.sinks.audit
    stored_types = type_matcher(audit.types)

    def stored(event_type: str) -> bool:
        return stored_types.fullmatch(event_type) is not None

    view = StoreView(open_store(audit, timeout=10))
    try:
        report = verify_against_topic(settings.kafka, spec, plan, view, stored)
    finally:
        view.close()
    report["store"] = view.store.dest
    report["unreadable"] = view.unreadable
    report["ok"] = report["ok"] and not view.unreadable
    return report
