"""The reconciliation report: what was replayed, per partition, in text and JSON.

Everything but the `run` section depends only on the range and the topic, so two
replays of the same range (one of them interrupted and resumed, say) give equal
reports apart from `run`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from replay.state import ReplayState
from replay.tally import combined_checksum

COUNTS = ("read", "written", "skipped", "filtered", "deadLettered")


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_report(
    state: ReplayState, *, complete: bool, target: str, dry_run: bool
) -> dict[str, Any]:
    ranges = {r.partition: r for r in state.plan.ranges}
    partitions = []
    for p, tally in sorted(state.tallies.items()):
        planned = ranges[p]
        partitions.append(
            {
                "partition": p,
                "range": {
                    "from": planned.start,
                    "to": planned.stop - 1,
                    "limit": planned.limit,
                },
                "firstOffset": tally.first_offset,
                "lastOffset": tally.last_offset,
                "read": tally.read,
                "written": tally.written,
                "skipped": tally.skipped,
                "filtered": tally.filtered,
                "deadLettered": tally.dead_lettered,
                "firstTime": _iso(tally.first_time_ms),
                "lastTime": _iso(tally.last_time_ms),
                "checksum": tally.to_json()["checksum"],
                "undecodable": tally.undecodable,
            }
        )
    totals: dict[str, Any] = {name: sum(p[name] for p in partitions) for name in COUNTS}
    firsts = [t.first_time_ms for t in state.tallies.values() if t.first_time_ms is not None]
    lasts = [t.last_time_ms for t in state.tallies.values() if t.last_time_ms is not None]
    totals["firstTime"] = _iso(min(firsts)) if firsts else None
    totals["lastTime"] = _iso(max(lasts)) if lasts else None
    elapsed = state.elapsed_seconds
    return {
        "topic": state.plan.topic,
        "target": target,
        "dryRun": dry_run,
        "complete": complete,
        "filters": {"types": state.command.get("types") or []},
        "partitions": partitions,
        "totals": totals,
        "checksum": combined_checksum(list(state.tallies.values())),
        "run": {
            "runs": state.runs,
            "elapsedSeconds": round(elapsed, 3),
            "recordsPerSecond": round(totals["read"] / elapsed, 1) if elapsed > 0 else None,
        },
    }


def report_text(report: dict[str, Any]) -> str:
    status = "complete" if report["complete"] else "INTERRUPTED (partial)"
    dry = " (dry run: nothing written)" if report["dryRun"] else ""
    lines = [f"replay of {report['topic']} to {report['target']}: {status}{dry}"]
    header = f"{'partition':>9} {'from':>10} {'to':>10} {'first':>10} {'last':>10} "
    header += " ".join(f"{name:>12}" for name in COUNTS)
    lines.append(header)
    for p in report["partitions"]:
        first = "-" if p["firstOffset"] is None else str(p["firstOffset"])
        last = "-" if p["lastOffset"] is None else str(p["lastOffset"])
        row = f"{p['partition']:>9} {p['range']['from']:>10} {p['range']['to']:>10} "
        row += f"{first:>10} {last:>10} "
        row += " ".join(f"{p[name]:>12}" for name in COUNTS)
        lines.append(row)
    totals = report["totals"]
    lines.append(
        f"{'total':>9} {'':>10} {'':>10} {'':>10} {'':>10} "
        + " ".join(f"{totals[name]:>12}" for name in COUNTS)
    )
    lines.append(f"time range: {totals['firstTime'] or '-'} .. {totals['lastTime'] or '-'}")
    lines.append(f"checksum (partition, offset, id of written records): {report['checksum']}")
    for p in report["partitions"]:
        for bad in p["undecodable"]:
            lines.append(
                f"undecodable: partition {p['partition']} offset {bad['offset']}: {bad['reason']}"
            )
    run = report["run"]
    rate = run["recordsPerSecond"]
    lines.append(
        f"took {run['elapsedSeconds']}s over {run['runs']} run(s)"
        + (f", {rate:,.0f} records/s" if rate else "")
    )
    return "\n".join(lines)
