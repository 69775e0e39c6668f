"""The producer's cost where real estates live: many quiet vCenters in one process.

    .venv/bin/python -m bench.producer_fleet [--vcenters 10] [--rate-each 5]
        [--seconds 30] [--idle-seconds 20] [--commit-interval 170ms]

Starts a private Kafka broker and `--vcenters` vcsim processes, one `vcstream produce`
for all of them, and one posting process per vcsim (EventEx through the real API). Two
phases:

- idle: `--idle-seconds` with no events: the producer's CPU per vCenter (percent of a
  core), the broker's and every vcsim's, and the transactions committed (none are due);
- steady: `--rate-each` events/s on every vCenter for `--seconds`: the producer's and the
  broker's CPU per event, transactions per second, events per transaction, latency from
  createdTime to committed (p50/p99/max, read_committed in another process) and the
  events missed.

Plus the producer's peak RSS and the 1-minute load average (a loaded machine inflates
CPU per event and latency: read them next to it). Compare with `bench.producer --rate
500` for one busy vCenter. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.machine import machine
from bench.producer import (
    CommittedReader,
    CpuMeter,
    ProducerUnderTest,
    broker_topics,
    latency_ms,
)
from devenv import LocalKafka, LocalVcsim
from devenv.event_flood import EventFlood


def write_config(
    path: Path, broker: LocalKafka, sims: list[LocalVcsim], interval: str | None
) -> Path:
    # no --commit-interval: the producer's own default
    interval_line = "" if interval is None else f"\n  commitInterval: {interval}"
    vcenters = "".join(
        f"""
  - name: vc{index}
    url: {sim.url}
    username: {sim.username}
    password: {sim.password}
    caFile: {sim.ca_file}"""
        for index, sim in enumerate(sims)
    )
    path.write_text(
        f"""
kafka: {{bootstrapServers: "{broker.bootstrap_servers}"}}
vcenters:{vcenters}
producer:
  startAt: now{interval_line}
metrics: {{port: 0}}
"""
    )
    return path


class Fleet:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.broker = LocalKafka(workdir / "kafka", heap="1g").start()
        self.sims = [LocalVcsim(workdir / f"vcsim{n}").start() for n in range(args.vcenters)]
        config = write_config(
            workdir / "vcstream.yaml", self.broker, self.sims, args.commit_interval
        )
        self.producer = ProducerUnderTest(config, workdir / "producer.log")
        self.floods = [EventFlood(sim, processes=1) for sim in self.sims]
        self.reader = CommittedReader(self.broker.bootstrap_servers, "vcenter.events", 6)

    def close(self) -> None:
        self.reader.stop()
        for flood in self.floods:
            flood.close()
        self.producer.stop()
        for sim in self.sims:
            sim.stop()
        self.broker.stop()

    def wait_until_streaming(self) -> None:
        deadline = time.monotonic() + 180
        log = self.producer.log_path
        while log.read_text().count("alarm definitions up to date") < len(self.sims):
            if time.monotonic() > deadline or self.producer.process.poll() is not None:
                raise TimeoutError(f"the producer never reached every vCenter: {log}")
            time.sleep(0.5)
        while "vcenter.events" not in broker_topics(self.broker):
            time.sleep(0.5)
        time.sleep(3)  # every worker waits on its doorbell now
        self.reader.start()

    def meter(self) -> CpuMeter:
        return CpuMeter(
            {
                "producer": [self.producer.process.pid],
                "kafka": [self.broker.child.pid],
                "vcsim": [sim.child.pid for sim in self.sims],
            }
        )

    def idle(self, seconds: float) -> dict[str, Any]:
        transactions = self.producer.transactions()
        meter = self.meter()
        time.sleep(seconds)
        percent = {
            name.replace("_cpu_ms_per_event", ""): ms / 10 / seconds
            for name, ms in meter.per_event_ms(1).items()
        }
        return {
            "seconds": seconds,
            "producer_cpu_percent": round(percent["producer"], 2),
            "producer_cpu_percent_per_vcenter": round(percent["producer"] / len(self.sims), 3),
            "kafka_cpu_percent": round(percent["kafka"], 2),
            "vcsim_cpu_percent_all": round(percent["vcsim"], 2),
            "transactions": int(self.producer.transactions() - transactions),
        }

    def steady(self, rate_each: float, seconds: float) -> dict[str, Any]:
        events_each = int(rate_each * seconds)
        expected = events_each * len(self.sims)
        transactions = self.producer.transactions()
        missed = self.producer.missed()
        meter = self.meter()
        began = time.time()
        posters = [
            threading.Thread(target=flood.post, args=(events_each, rate_each))
            for flood in self.floods
        ]
        for poster in posters:
            poster.start()
        for poster in posters:
            poster.join()
        self.reader.collect(expected, 60)
        self.reader.settle(quiet=2)
        seen = self.reader.seen
        committed_by = max((at for at, _ in seen), default=began)
        committed_transactions = self.producer.transactions() - transactions
        return {
            "vcenters": len(self.sims),
            "target_events_per_s_each": rate_each,
            "events_posted": expected,
            "events_committed": len(seen),
            "events_missed": int(self.producer.missed() - missed),
            "transactions_per_s": round(committed_transactions / (committed_by - began), 1),
            "events_per_transaction": round(len(seen) / max(committed_transactions, 1), 2),
            **latency_ms(seen),
            **meter.per_event_ms(len(seen)),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vcenters", type=int, default=10)
    parser.add_argument("--rate-each", type=float, default=5, help="events/s per vCenter")
    parser.add_argument("--seconds", type=float, default=30, help="length of the steady run")
    parser.add_argument("--idle-seconds", type=float, default=20)
    parser.add_argument(
        "--commit-interval", help="producer.commitInterval (default: the producer's own)"
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    fleet = Fleet(args, workdir)
    try:
        fleet.wait_until_streaming()
        idle = fleet.idle(args.idle_seconds)
        steady = fleet.steady(args.rate_each, args.seconds)
        result = {
            "benchmark": "producer_fleet",
            "commit_interval": args.commit_interval,
            "idle": idle,
            "steady": steady,
            "producer_peak_rss_mb": round(fleet.producer.peak_rss_mb(), 1),
            "machine": machine(),
        }
        print(json.dumps(result, indent=2))
    finally:
        fleet.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
