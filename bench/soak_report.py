"""bench.soak's figures from its samples: peak and growing memory, commit rate against
write rate, events per CPU-second, and the verdict on the streams worker's "done when".

A sample is a plain dict (it goes into the JSON as it is):

    {"t_s": 12.3, "phase": "load" | "drain" | "restart", "events_posted": 3600,
     "events_written": 3540.0, "load_average_1m": 1.9,
     "processes": {"streams": {"pid": 4711, "rss_mib": 151.2, "cpu_s": 8.1, "events": 3500.0}},
     "lags": {"vcstream-streams": {"vcenter.events/0": {"committed": 10, "end": 90, "lag": 80}}}}
"""

from __future__ import annotations

import math
from typing import Any

Sample = dict[str, Any]
MIB = 1024 * 1024
RSS_WINDOW_S = 15 * 60  # the "RSS growth over the last 15 minutes"
RSS_GROWTH_LIMIT_MIB = 5.0


def load_phase(samples: list[Sample]) -> list[Sample]:
    return [s for s in samples if s["phase"] == "load"]


def rss_window_s(load_seconds: float) -> float:
    """The last 15 minutes, or the last three quarters of a shorter run (the first
    quarter is start-up: imports, caches, buffers filling)."""
    return min(RSS_WINDOW_S, 0.75 * load_seconds)


def _fit_slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope: one GC or allocator step at either end moves it little."""
    if len(points) < 2:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread == 0:
        return None
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / spread


def memory(samples: list[Sample], load_seconds: float) -> dict[str, dict[str, Any]]:
    """Per process: peak RSS over the whole run, and its growth over the RSS window of
    the load phase: from the first to the last sample in it, and as the slope of a line
    fitted to all of them, per 15 minutes (the issue's figure; for a run of 20 minutes or
    more, the fitted growth over the window itself)."""
    window = rss_window_s(load_seconds)
    loaded = load_phase(samples)
    end = loaded[-1]["t_s"] if loaded else 0.0
    out: dict[str, dict[str, Any]] = {}
    for role in samples[0]["processes"] if samples else []:
        every = [s["processes"].get(role, {}).get("rss_mib") for s in samples]
        known = [v for v in every if v is not None]
        points = [
            (s["t_s"], s["processes"][role]["rss_mib"])
            for s in loaded
            if s["t_s"] >= end - window and s["processes"].get(role, {}).get("rss_mib") is not None
        ]
        slope = _fit_slope(points)  # MiB per second
        out[role] = {
            "peak_rss_mib": round(max(known), 1) if known else None,
            "rss_growth_mib": round(points[-1][1] - points[0][1], 1) if points else None,
            "rss_growth_mib_per_15min": None if slope is None else round(slope * RSS_WINDOW_S, 1),
            "rss_window_minutes": round(window / 60, 2),
        }
    return out


def _rate(first: Sample, last: Sample, value: Any) -> float | None:
    seconds = float(last["t_s"] - first["t_s"])
    a, b = value(first), value(last)
    if seconds <= 0 or a is None or b is None:
        return None
    return round(float(b - a) / seconds, 1)


def offset_rates(samples: list[Sample]) -> dict[str, Any]:
    """Over the load phase: offsets written per second on each input partition, and
    offsets committed per second by each group on it; the hot partition (most written)
    with the streams group's commit rate next to its write rate."""
    loaded = [s for s in load_phase(samples) if s.get("lags")]
    if len(loaded) < 2:
        return {}
    first, last = loaded[0], loaded[-1]
    written: dict[str, float | None] = {}
    committed: dict[str, dict[str, float | None]] = {}
    for group, rows in last["lags"].items():
        committed[group] = {}
        for name in rows:

            def field(sample: Sample, key: str, group: str = group, name: str = name) -> Any:
                return sample["lags"].get(group, {}).get(name, {}).get(key)

            # a partition with no commit at either end has no commit rate (not one from 0)
            committed[group][name] = _rate(first, last, lambda s, f=field: f(s, "committed"))
            written.setdefault(name, _rate(first, last, lambda s, f=field: f(s, "end")))
    return {"written_per_s": written, "committed_per_s": committed}


def hot_partition(rates: dict[str, Any], streams_group: str, topic: str) -> dict[str, Any]:
    written = {
        name: rate
        for name, rate in rates.get("written_per_s", {}).items()
        if name.startswith(f"{topic}/") and rate is not None
    }
    if not written:
        return {}
    name = max(written, key=lambda n: written[n])
    commit = rates["committed_per_s"].get(streams_group, {}).get(name)
    total = sum(written.values())
    return {
        "partition": name,
        "share_of_writes": round(written[name] / total, 3) if total else None,
        "write_offsets_per_s": written[name],
        "streams_commit_offsets_per_s": commit,
        "commit_to_write_ratio": round(commit / written[name], 3)
        if commit is not None and written[name]
        else None,
    }


def lag_tolerance(samples: list[Sample], topic: str, commit_interval_s: float, rate: float) -> int:
    """One commit interval's worth of what the load wrote to the hottest partition of
    `topic`, in offsets (transaction markers take offsets too); `rate` before any load."""
    written = offset_rates(samples).get("written_per_s", {})
    rates = [r for name, r in written.items() if name.startswith(f"{topic}/") and r is not None]
    return max(1, math.ceil(max(rates, default=rate) * commit_interval_s))


def events_per_cpu_second(samples: list[Sample]) -> dict[str, Any]:
    """Per role, over the load phase: the events it counted itself (producer: written;
    streams: read; sinks: delivered or skipped) per CPU-second it used."""
    loaded = load_phase(samples)
    if len(loaded) < 2:
        return {}
    first, last = loaded[0], loaded[-1]
    out: dict[str, Any] = {}
    for role, now in last["processes"].items():
        then = first["processes"].get(role, {})
        if now.get("pid") != then.get("pid") or None in (now.get("cpu_s"), then.get("cpu_s")):
            continue  # restarted or gone: its CPU does not add up
        cpu = now["cpu_s"] - then["cpu_s"]
        entry: dict[str, Any] = {"cpu_s": round(cpu, 1)}
        if now.get("events") is not None and then.get("events") is not None:
            events = now["events"] - then["events"]
            entry["events"] = int(events)
            entry["events_per_cpu_s"] = round(events / cpu, 1) if cpu > 0 else None
        out[role] = entry
    return out


def load_average(samples: list[Sample]) -> dict[str, float | None]:
    values = [s["load_average_1m"] for s in load_phase(samples)]
    if not values:
        return {"mean_1m": None, "max_1m": None}
    return {"mean_1m": round(sum(values) / len(values), 2), "max_1m": round(max(values), 2)}


def worst_lag(lags: dict[str, dict[str, Any]] | None) -> tuple[str | None, int | None]:
    if not lags:
        return None, None
    known = {name: row["lag"] for name, row in lags.items() if row.get("lag") is not None}
    if not known:
        return None, None
    name = max(known, key=lambda n: known[n])
    return name, int(known[name])


def verdict(
    final_lags: dict[str, dict[str, Any]] | None,
    tolerance: int,
    worker_memory: dict[str, Any],
    restart: dict[str, Any],
    drained: bool,
    load_seconds: float,
) -> dict[str, Any]:
    """The issue's three "done when" checks on the streams worker, each with its figure."""
    partition, lag = worst_lag(final_lags)
    lag_ok = lag is not None and lag <= tolerance
    growth = worker_memory.get("rss_growth_mib_per_15min")
    rss_ok = growth is not None and growth < RSS_GROWTH_LIMIT_MIB
    duplicates = restart.get("duplicates")
    restart_ok = duplicates == 0 and bool(restart.get("complete"))
    return {
        "commit_lag_at_end_ok": lag_ok,
        "commit_lag_at_end_worst": {"partition": partition, "lag": lag},
        "commit_lag_tolerance_offsets": tolerance,
        "worker_rss_growth_ok": rss_ok,
        "worker_rss_growth_mib_per_15min": growth,
        "worker_rss_window_minutes": worker_memory.get("rss_window_minutes"),
        # a shorter run's trend is extrapolated to 15 minutes: a warning, not a measurement
        "worker_rss_conclusive": load_seconds >= 20 * 60,
        "restart_reemits_nothing_committed": restart_ok,
        "restart_duplicates": duplicates,
        "drained_before_restart": drained,
        "pass": lag_ok and rss_ok and restart_ok,
    }


def _lags_of(sample: Sample | None) -> dict[str, Any] | None:
    if sample is None or not sample["lags"]:
        return None
    return {g: {n: r["lag"] for n, r in rows.items()} for g, rows in sample["lags"].items()}


def figures(
    samples: list[Sample],
    load_seconds: float,
    streams_group: str,
    streams_role: str,
    topic: str,
    tolerance: int,
    drain: dict[str, Any],
    restart: dict[str, Any],
) -> dict[str, Any]:
    """Everything the samples tell, the verdict first. The final lags are the last ones
    before the restart: what the drain left."""
    loaded = load_phase(samples)
    final = [s for s in samples if s["phase"] != "restart" and s["lags"]]
    final_lags = final[-1]["lags"] if final else None
    used = memory(samples, load_seconds)
    rates = offset_rates(samples)
    return {
        "verdict": verdict(
            (final_lags or {}).get(streams_group),
            tolerance,
            used.get(streams_role, {}),
            restart,
            bool(drain.get("drained")),
            load_seconds,
        ),
        "hot_partition": hot_partition(rates, streams_group, topic),
        "lag_end_of_load": _lags_of(loaded[-1] if loaded else None),
        "lag_final": _lags_of(final[-1] if final else None),
        "drain": drain,
        "restart": restart,
        "memory": used,
        "events_per_cpu_second": events_per_cpu_second(samples),
        "load_average": load_average(samples),
        "offset_rates": rates,
    }
