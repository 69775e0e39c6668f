"""Soak of the whole pipeline under sustained, skewed load: does every stage keep up,
commit what it did, hold its memory, and restart without repeating itself?

    .venv/bin/python -m bench.soak [--minutes 20] [--rate 300] [--hot-share 0.99]
                                   [--sample-seconds 10] [--out FILE]

Starts a private Kafka broker and vcsim, then every role `./dev run` runs as its
own process (producer, streams worker, the Knative, Slack and audit sinks, with local
stand-ins for Knative and Slack), and posts `--rate` EventEx per second through the real
API (devenv.event_flood) for `--minutes`, `--hot-share` of them about one VM,
so one partition of `vcenter.events` is hot, as one noisy VM makes it in production.

Every `--sample-seconds` it records, for the streams group and every sink group, each
partition's committed offset against the log end; each process's RSS and CPU time
(/proc); the roles' own event counters; the 1-minute load average. Then it stops the
flood, waits (bounded) for the pipeline to drain, SIGTERMs the streams worker (timing
its exit), starts it again and counts what it wrote to the audit topic that the topic
already held (by ce_id): what a restart re-emits. Prints one JSON object, verdict first.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import soak_report as report
from bench.machine import machine
from bench.soak_flood import SteadyFlood
from bench.soak_probe import Offsets, audit_ids, metric_total, usage
from bench.soak_report import Sample
from devenv import LocalKafka, LocalVcsim
from devenv.event_flood import EventFlood
from devenv.pipeline import LocalPipeline, local_config
from devenv.process import free_port
from devenv.receivers import CloudEventsDisplay, SlackConsole
from sinks import registry
from vcstream.settings import Settings

# the counters with which each role counts the events it handled
ROLE_COUNTERS = {
    "producer": ("vcstream_producer_events_total",),
    "streams": ("vcstream_streams_events_in_total",),
    "sink": (
        "vcstream_sink_delivered_total",
        "vcstream_sink_filtered_total",
        "vcstream_sink_dead_lettered_total",
    ),
}
STREAMS = "streams"
VCSIM_VMS_PER_HOST = 4  # 8 VMs in all: the cold share lands on every raw partition


class Soak:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.kafka = LocalKafka(workdir / "kafka", heap="1g")
        self.vcsim = LocalVcsim(workdir / "vcsim", vms=VCSIM_VMS_PER_HOST)
        self.display = CloudEventsDisplay(free_port(), None, retain=False)
        self.slack = SlackConsole(free_port(), None, retain=False)
        self.receiving = False
        self.pipeline: LocalPipeline | None = None
        self.flood: EventFlood | None = None
        self.steady: SteadyFlood | None = None
        self.offsets: Offsets | None = None
        self.settings = Settings()
        self.groups: dict[str, list[str]] = {}
        self.samples: list[Sample] = []
        self.began = 0.0  # monotonic start of the load
        self.topic = self.settings.topics.events
        self.lag_tolerance = 1  # offsets; from what the load wrote, once it ran

    # ---- start and stop -------------------------------------------------------------

    def start(self) -> None:
        # the stand-ins first: stopping one that never served would wait forever
        self.display.start()
        self.slack.start()
        self.receiving = True
        self.kafka.start()
        self.vcsim.start()
        config = local_config(
            self.kafka, self.vcsim, self.workdir, self.display.url, self.slack.url
        )
        config["logging"] = {"level": "WARNING"}  # a role's log lines are not the load
        # what the roles run with, minus the vCenter, whose password this process lacks
        self.settings = Settings(**{k: v for k, v in config.items() if k != "vcenters"})
        self.topic = self.settings.topics.events
        path = LocalPipeline.write_config(self.workdir, config)
        env = {"VCSIM_PASSWORD": self.vcsim.password}
        self.pipeline = LocalPipeline(self.workdir, path, env=env).start()
        self.pipeline.wait_healthy(timeout=180)
        self.offsets = Offsets(self.kafka.bootstrap_servers)
        self.groups = {self.settings.streams.app_id: [self.topic]}
        for role in self.pipeline.roles:
            if role.startswith("sink-"):
                kind = role.removeprefix("sink-")
                topics = registry.source_topics(kind, self.settings)
                self.groups[registry.group_id(kind, self.settings)] = topics
        self.flood = EventFlood(self.vcsim, self.args.posters, self.args.hot_share)

    def close(self) -> None:
        # upstream first: nothing keeps writing into a stage already stopped
        if self.steady is not None:
            self.steady.stop()
        if self.flood is not None:
            self.flood.close()
        if self.pipeline is not None:
            self.pipeline.stop()
        if self.receiving:
            self.display.stop()
            self.slack.stop()
        self.vcsim.stop()
        self.kafka.stop()

    # ---- sampling -------------------------------------------------------------------

    def _pids(self) -> dict[str, list[int]]:
        assert self.pipeline is not None
        pids = {role: [child.pid] for role, child in self.pipeline.processes.items()}
        pids["kafka"] = [self.kafka.child.pid]
        pids["vcsim"] = [self.vcsim.child.pid]
        pids["flood"] = self.flood.pids if self.flood is not None else []
        pids["bench"] = [os.getpid()]  # the sampler and the Knative and Slack stand-ins
        return pids

    def _role_events(self, role: str) -> float | None:
        assert self.pipeline is not None
        counters = ROLE_COUNTERS.get(role.split("-", maxsplit=1)[0])
        if counters is None or not self.pipeline.processes[role].alive():
            return None
        try:
            return metric_total(self.pipeline.metrics(role), *counters)
        except OSError:
            return None  # busy or restarting: a gap in this sample, not the end of the run

    def sample(self, phase: str) -> Sample:
        assert self.pipeline is not None and self.offsets is not None
        processes: dict[str, dict[str, Any]] = {}
        for role, pids in self._pids().items():
            rss, cpu = usage(pids)
            processes[role] = {
                "pids": pids,
                "rss_mib": None if rss is None else round(rss / report.MIB, 1),
                "cpu_s": None if cpu is None else round(cpu, 2),
                "events": self._role_events(role),
            }
        try:
            lags: dict[str, Any] | None = self.offsets.group_lags(self.groups)
        except Exception as exc:  # the broker's answer was late: this sample has none
            print(f"offsets not read: {exc}", file=sys.stderr)
            lags = None
        taken: Sample = {
            "t_s": round(time.monotonic() - self.began, 1),
            "phase": phase,
            "events_posted": self.steady.posted if self.steady is not None else 0,
            "events_written": processes["producer"]["events"],
            "load_average_1m": round(os.getloadavg()[0], 2),
            "exited": self.pipeline.dead(),
            "processes": processes,
            "lags": lags,
        }
        self.samples.append(taken)
        self._progress(taken)
        return taken

    def _progress(self, s: Sample) -> None:
        streams_lag = (s["lags"] or {}).get(self.settings.streams.app_id, {})
        lag = {name: row["lag"] for name, row in streams_lag.items()}
        worker = s["processes"][STREAMS]["rss_mib"]
        print(
            f"{s['t_s']:7.0f}s {s['phase']:7} posted {s['events_posted']} written "
            f"{s['events_written']} streams lag {lag} worker {worker} MiB "
            f"load {s['load_average_1m']}",
            file=sys.stderr,
        )

    def _every(
        self, seconds: float, until: float, phase: str, done: Callable[[Sample], bool] | None
    ) -> bool:
        """Sample every `seconds` and once more at the monotonic `until`, or until
        `done(sample)`; whether `done` came true."""
        next_at = time.monotonic()
        while True:
            taken = self.sample(phase)
            if done is not None and done(taken):
                return True
            if next_at >= until:
                return False
            next_at = min(next_at + seconds, until)
            time.sleep(max(0.0, next_at - time.monotonic()))

    # ---- phases ---------------------------------------------------------------------

    def _streams_lag(self) -> int | None:
        """The streams group's lag summed over its partitions: what a restart reads again."""
        assert self.offsets is not None
        group = self.settings.streams.app_id
        try:
            rows = self.offsets.group_lags({group: self.groups[group]})[group].values()
        except Exception:  # the broker's answer was late: unknown, the run goes on
            return None
        return sum(row["lag"] or 0 for row in rows)

    def load(self) -> None:
        assert self.flood is not None
        seconds = self.args.minutes * 60
        self.steady = SteadyFlood(self.flood, self.args.rate, seconds)
        self.began = time.monotonic()
        self.steady.start()
        until = self.began + seconds

        def flood_failed(_: Sample) -> bool:
            return self.steady is not None and self.steady.error is not None

        self._every(self.args.sample_seconds, until, "load", flood_failed)
        self.steady.stop()
        self.lag_tolerance = report.lag_tolerance(
            self.samples,
            self.topic,
            self.settings.streams.commit_interval.total_seconds(),
            float(self.args.rate),
        )
        if self.steady.error is not None:
            raise RuntimeError(f"the event flood failed: {self.steady.error}")

    def drain(self) -> dict[str, Any]:
        """Sample until every group is within the tolerance of the log end on every
        partition and the raw topic stopped growing (the producer read all), bounded."""
        began = time.monotonic()
        previous: list[int | None] = [None]

        def drained(s: Sample) -> bool:
            if not s["lags"]:
                return False
            rows = [row for group in s["lags"].values() for row in group.values()]
            written = s["events_written"]
            settled = written is not None and written == previous[0]
            previous[0] = written
            return settled and all(
                row["lag"] is not None and row["lag"] <= self.lag_tolerance for row in rows
            )

        interval = min(self.args.sample_seconds, 5.0)
        done = self._every(interval, began + self.args.drain_seconds, "drain", drained)
        return {"drained": done, "seconds": round(time.monotonic() - began, 1)}

    def restart(self) -> dict[str, Any]:
        """SIGTERM the streams worker alone, start it again, and count what it then wrote
        to the audit topic that the topic already held."""
        assert self.pipeline is not None and self.offsets is not None
        topic, bootstrap = self.settings.topics.audit, self.kafka.bootstrap_servers
        partitions = self.offsets.partitions([topic])
        lag_before = self._streams_lag()
        stopping = time.monotonic()
        code = self.pipeline.stop_role(STREAMS, timeout=self.args.sigterm_timeout)
        exit_s = time.monotonic() - stopping
        lag_after_exit = self._streams_lag()  # what its last commit on the way out left
        # whatever the worker wrote on its way out belongs to "before"
        marks = self.offsets.ends(partitions)
        self.pipeline.start_role(STREAMS)
        restarted = time.monotonic()
        before, before_complete = audit_ids(
            bootstrap, topic, {p: (0, marks[(t, p)]) for t, p in partitions}, timeout=120
        )
        pipeline, worker = self.pipeline, self.pipeline.processes[STREAMS]
        try:
            worker.wait_ready(lambda: pipeline.healthy(STREAMS), 90, "streams worker")
            healthy_s: float | None = round(time.monotonic() - restarted, 1)
        except (TimeoutError, RuntimeError) as exc:
            print(f"restart: {exc}", file=sys.stderr)
            healthy_s = None
        previous: list[int | None] = [None]
        group = self.settings.streams.app_id

        def caught_up(s: Sample) -> bool:
            # caught up and quiet: the audit topic's end stayed put since the last sample
            lags = s["lags"] or {}
            rows = lags.get(group, {})
            lagging = not rows or any((r["lag"] or 0) > self.lag_tolerance for r in rows.values())
            audit = [r["end"] for g in lags.values() for n, r in g.items() if n.startswith(topic)]
            ends = sum(audit) if audit and None not in audit else None
            quiet, previous[0] = ends is not None and ends == previous[0], ends
            return quiet and not lagging

        interval = min(self.args.sample_seconds, 5.0)
        settled = self._every(interval, restarted + self.args.restart_seconds, "restart", caught_up)
        now = self.offsets.ends(partitions)
        after, after_complete = audit_ids(
            bootstrap, topic, {p: (marks[(t, p)], now[(t, p)]) for t, p in partitions}, 120
        )
        seen = set(before)
        return {
            "sigterm_exit_seconds": round(exit_s, 2),
            "sigterm_exit_code": code,
            "killed_after_timeout": code == -signal.SIGKILL,
            "streams_lag_before_sigterm": lag_before,
            "streams_lag_after_exit": lag_after_exit,
            "healthy_again_seconds": healthy_s,
            "settled": settled,
            "audit_records_before": len(before),
            "audit_duplicates_before": len(before) - len(seen),
            "audit_records_after_restart": len(after),
            "duplicates": sum(1 for ce_id in after if ce_id in seen),
            "complete": before_complete and after_complete,
        }

    # ---- the report -----------------------------------------------------------------

    def result(self, drain: dict[str, Any], restart: dict[str, Any]) -> dict[str, Any]:
        load_s = self.args.minutes * 60
        loaded = report.load_phase(self.samples)
        posted = self.steady.posted if self.steady is not None else 0
        figures = report.figures(
            self.samples,
            load_s,
            self.settings.streams.app_id,
            STREAMS,
            self.topic,
            self.lag_tolerance,
            drain,
            restart,
        )
        return {
            "benchmark": "soak",
            "verdict": figures.pop("verdict"),
            "config": {
                "minutes": self.args.minutes,
                "rate": self.args.rate,
                "hot_share": self.args.hot_share,
                "sample_seconds": self.args.sample_seconds,
                "posters": self.args.posters,
                "raw_partitions": self.settings.producer.raw_topic.partitions,
                "commit_interval_s": self.settings.streams.commit_interval.total_seconds(),
                "groups": self.groups,
            },
            "events": {
                "posted": posted,
                "posted_per_s": round(posted / load_s, 1) if load_s else None,
                "written": loaded[-1]["events_written"] if loaded else None,
                "knative_received": self.display.count,
                "slack_received": self.slack.count,
            },
            **figures,
            "machine": machine(),
            "workdir": str(self.workdir),
            "samples": self.samples,
        }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=20, help="length of the load")
    parser.add_argument("--rate", type=float, default=300, help="events posted per second")
    parser.add_argument(
        "--hot-share", type=float, default=0.99, help="share of the events about one VM (0-1)"
    )
    parser.add_argument("--sample-seconds", type=float, default=10)
    parser.add_argument("--posters", type=int, default=2, help="posting processes")
    parser.add_argument("--drain-seconds", type=float, default=180, help="longest drain wait")
    parser.add_argument(
        "--restart-seconds", type=float, default=120, help="longest wait after the restart"
    )
    parser.add_argument("--sigterm-timeout", type=float, default=60, help="then SIGKILL")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (data, logs)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    print(f"work dir (logs in logs/): {workdir}", file=sys.stderr)
    # SIGTERM ends the run as Ctrl-C does: through `finally`, stopping what was started
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    soak = Soak(args, workdir)
    try:
        soak.start()
        soak.load()
        drain = soak.drain()
        restart = soak.restart()
    finally:
        soak.close()
    result = soak.result(drain, restart)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
