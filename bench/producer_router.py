"""The producer's CPU per event beside VEBA's event router: the same vcsim, the same events,
in the same run (the "≈ 0.3 ms, measured beside it" of issue #18).

    .venv/bin/python -m bench.producer_router [--rate 50 --rate 5] [--seconds 30]
        [--idle-seconds 20] [--rounds 3] [--router PATH] [--router-checkpoint]
        [--alternate | --only router|producer] [--tree CHECKOUT]
        [--commit-interval 180ms] [--producer-setting batchScheduling=false]

Starts a private Kafka broker and one vcsim; `vcstream produce` (as bench.producer runs
it, this checkout or `--tree`) and VEBA's router (bench.veba_router: the appliance's
configuration, delivering binary CloudEvents over HTTP to a receiver process on
127.0.0.1) both read that vcsim, side by side. Each round has an idle phase, then a phase
per `--rate` with EventEx posted by devenv.event_flood at that rate for `--seconds`.

Side by side by default: both read the very same events at the same moments, so the
noise of a shared machine (other benchmarks, their load) falls on both alike, and the
kernel keeps each process's CPU apart. Either uses a few percent of one of the two cores
at these rates, but each then runs beside the other's work. `--alternate` measures each
alone in the same run: per rate a phase for each, the other paused (SIGSTOP) and caught
up after it (what it reads then is not measured), the order swapped every round, each
phase cut to 900 events (the paused one must still find its place in vcsim's 1,000-event
history); the machine's noise then falls on each at other moments. `--only router|producer`
runs one.

For each (in the same accounting: the CPU time of the process, all its threads live or
ended, as /proc's utime + stime count it but to the nanosecond, sampled every 50 ms):
- idle: percent of a core over `--idle-seconds` with no events;
- steady: CPU per event from the first event posted to the last one delivered (the router:
  received by the HTTP receiver; the producer: committed, seen by a read_committed
  consumer as bench.producer sees it), latency from createdTime to that (p50/p99/max),
  events missed (posted and never delivered; the producer's own gap metric too), and the
  broker's CPU per event beside the producer's (the router has no broker).
Per rate, `producer_to_router_cpu_ratio` is producer / router CPU per event (the issue's
target: at most 1 at 50/s), per round and as the median of the rounds. Plus each one's
peak RSS and the 1-minute load average per round (a loaded machine inflates CPU per
event and latency: read them beside it). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import veba_router
from bench.cpu_sampler import CpuSampler
from bench.machine import machine
from bench.producer import (
    REPO,
    CommittedReader,
    ProducerUnderTest,
    add_producer_settings,
    broker_topics,
    latency_ms,
    producer_settings,
    write_config,
)
from devenv import LocalKafka, LocalVcsim
from devenv.event_flood import EventFlood

# vcsim keeps its last 1,000 events (as bench.producer's drain backlog, stay below): a
# reader paused for longer returned nothing more once resumed, in this bench's first
# --alternate run (the producer: "the event collector returns nothing although events ...
# exist", then a gap of 499, then no event of its own phase in 90 s)
BACKLOG_MAX = 900


class Readers:
    """What each reader under test delivered, and how many bench events it should have."""

    def __init__(self, readers: dict[str, CommittedReader]) -> None:
        self.readers = readers
        self.expected = dict.fromkeys(readers, 0)

    def posted(self, events: int) -> None:
        for name in self.readers:
            self.expected[name] += events

    def wait(self, timeout: float, names: set[str]) -> None:
        deadline = time.monotonic() + timeout
        for name in names:
            reader = self.readers[name]
            reader.collect(self.expected[name], max(deadline - time.monotonic(), 1))
        for name in names:
            self.readers[name].settle(quiet=2)

    def marks(self) -> dict[str, int]:
        return {name: len(reader.seen) for name, reader in self.readers.items()}

    def recount(self) -> None:
        """A lost event never arrives: the next phase expects anew from what came."""
        self.expected = self.marks()


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.runs = {"router", "producer"} if args.only is None else {args.only}
        self.closers: list[Any] = []
        try:
            self._start(args, workdir)
        except BaseException:  # a router that never streams: stop what did start
            self.close()
            raise

    def _start(self, args: argparse.Namespace, workdir: Path) -> None:
        self.sim = LocalVcsim(workdir / "vcsim").start()
        self.closers.append(self.sim.stop)
        readers: dict[str, CommittedReader] = {}
        pids: dict[str, int] = {}
        if "router" in self.runs:
            self.binary = veba_router.router_binary(args.router)
            receiver = veba_router.EventReceiver()
            receiver.start()
            self.closers.append(receiver.stop)
            config = veba_router.write_config(
                workdir / "router.yaml", self.sim, receiver.port, args.router_checkpoint, workdir
            )
            self.router = veba_router.RouterUnderTest(self.binary, config, workdir)
            self.closers.append(self.router.stop)
            self.router.wait_until_streaming()
            print(f"router log: {self.router.log_path}", file=sys.stderr)
            readers["router"], pids["router"] = receiver, self.router.pid
        if "producer" in self.runs:
            self.broker = LocalKafka(workdir / "kafka", heap="1g").start()
            self.closers.append(self.broker.stop)
            config = write_config(
                workdir / "vcstream.yaml",
                self.broker,
                self.sim,
                100,
                "INFO",
                producer_settings(args),
                {},
            )
            self.producer = ProducerUnderTest(config, workdir / "producer.log", args.tree)
            self.closers.append(self.producer.stop)
            print(f"producer log: {self.producer.log_path}", file=sys.stderr)
            committed = CommittedReader(self.broker.bootstrap_servers, "vcenter.events", 6)
            self.closers.append(committed.stop)
            self.wait_for_producer()
            committed.start()
            readers["producer"], pids["producer"] = committed, self.producer.process.pid
            pids["kafka"] = self.broker.child.pid
        self.flood = EventFlood(self.sim, processes=args.posters)
        self.closers.append(self.flood.close)
        self.readers = Readers(readers)
        self.cpu = CpuSampler(pids)
        self.cpu.start()
        self.closers.append(self.cpu.stop)

    def close(self) -> None:
        for close in reversed(self.closers):
            close()

    def wait_for_producer(self) -> None:
        deadline = time.monotonic() + 120
        while "vcenter.events" not in broker_topics(self.broker):  # made at start
            if time.monotonic() > deadline:
                raise TimeoutError(f"the producer never started: {self.producer.log_path}")
            time.sleep(0.5)

    def warm_up(self, timeout: float = 120) -> None:
        """An event a second until each reader has delivered one: both are streaming (an
        event posted before the producer's `startAt: now` is never read, by design)."""
        marks = self.readers.marks()
        deadline = time.monotonic() + timeout
        while any(count == marks[name] for name, count in self.readers.marks().items()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no warm-up event delivered: {self.readers.marks()}")
            self.post(1, 1)
            for reader in self.readers.readers.values():
                reader.collect(len(reader.seen) + 1, 1)
        self.catch_up(set(self.readers.readers))

    def catch_up(self, names: set[str]) -> None:
        """Until these readers delivered nothing for longer than the router's longest
        back-off (5 s), then count anew: a backlog beyond vcsim's ~1,000-event history is
        lost to a reader that was paused, and is no phase's business."""
        for name in names:
            self.readers.readers[name].settle(quiet=6)
        self.readers.recount()

    def pause(self, name: str) -> None:
        (self.router if name == "router" else self.producer).pause()

    def resume(self, name: str) -> None:
        (self.router if name == "router" else self.producer).resume()

    def post(self, events: int, rate: float) -> float:
        """Post; the epoch second the first request went out."""
        began = self.flood.post(events, rate).began
        self.readers.posted(events)
        return began

    def idle(self, seconds: float) -> dict[str, Any]:
        transactions = self.producer.transactions() if "producer" in self.runs else 0
        began = time.time()
        time.sleep(seconds)
        ended = time.time()
        time.sleep(self.cpu.interval * 2)  # a sample after the end
        result: dict[str, Any] = {"seconds": seconds}
        for name in self.cpu.pids:
            cpu = self.cpu.between(name, began, ended)
            result[f"{name}_cpu_percent"] = round(cpu * 100 / (ended - began), 3)
        if "producer" in self.runs:
            result["producer_transactions"] = int(self.producer.transactions() - transactions)
        return result

    def phase(self, rate: float, seconds: float, measured: set[str]) -> dict[str, Any]:
        """`rate` events/s for `seconds`, read by `measured`; the others are paused
        (SIGSTOP) meanwhile and catch up afterwards, outside the phase."""
        paused = set(self.readers.readers) - measured
        for name in paused:
            self.pause(name)
        events = int(rate * seconds)
        marks = self.readers.marks()
        missed_before = self.producer.missed() if "producer" in measured else 0
        try:
            began = self.post(events, rate)
            self.readers.wait(60 + seconds, measured)
            time.sleep(self.cpu.interval * 2)
        finally:
            for name in paused:
                self.resume(name)
        result: dict[str, Any] = {
            "target_events_per_s": rate,
            "seconds": seconds,
            "events_posted": events,
        }
        for name in sorted(measured):
            seen = self.readers.readers[name].seen[marks[name] :]
            figures: dict[str, Any] = {
                "events_delivered": len(seen),
                "events_missed": events - len(seen),
                **latency_ms(seen),
            }
            if name == "producer":
                figures["gap_metric_events_missed"] = int(self.producer.missed() - missed_before)
            if seen:  # nothing delivered: missed says it all, a CPU per event means nothing
                ended = max(at for at, _ in seen)
                cpu = self.cpu.between(name, began, ended)
                figures["cpu_ms_per_event"] = round(cpu * 1000 / len(seen), 4)
                if name == "producer":
                    kafka = self.cpu.between("kafka", began, ended)
                    figures["kafka_cpu_ms_per_event"] = round(kafka * 1000 / len(seen), 4)
            result[name] = figures
        if paused:
            self.catch_up(paused)
        self.readers.recount()
        return result

    def rate(self, rate: float, seconds: float, order: list[str]) -> dict[str, Any]:
        """One phase at `rate` read by all side by side, or with --alternate one phase each
        in `order`; the producer / router ratio of CPU per event."""
        if not self.args.alternate:
            result = self.phase(rate, seconds, set(self.readers.readers))
        else:
            # the paused reader must find its place still in vcsim's history when resumed
            seconds = min(seconds, BACKLOG_MAX / rate)
            result = {"order": list(order)}
            for name in order:
                result.update(self.phase(rate, seconds, {name}))
        router_ms = result.get("router", {}).get("cpu_ms_per_event")
        producer_ms = result.get("producer", {}).get("cpu_ms_per_event")
        if router_ms and producer_ms:
            result["producer_to_router_cpu_ratio"] = round(producer_ms / router_ms, 3)
        return result


def across(rounds: list[dict[str, Any]], rate: float | None, *path: str) -> list[float]:
    """One figure of every round: of its idle phase (`rate` None) or of its phase at `rate`."""
    values = []
    for one in rounds:
        value: Any = (
            one["idle"]
            if rate is None
            else next(p for p in one["steady"] if p["target_events_per_s"] == rate)
        )
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, int | float):
            values.append(value)
    return values


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 4) if values else None


def summary(rounds: list[dict[str, Any]], rates: list[float]) -> dict[str, Any]:
    """Medians of the rounds, but events missed summed: one miss is one too many."""
    result: dict[str, Any] = {
        "load_average_1m_by_round": [one["load_average_1m"] for one in rounds],
        "idle_cpu_percent": {
            name: median(across(rounds, None, f"{name}_cpu_percent"))
            for name in ("router", "producer", "kafka")
        },
    }
    for rate in rates:
        ratios = across(rounds, rate, "producer_to_router_cpu_ratio")
        figures: dict[str, Any] = {
            "producer_to_router_cpu_ratio": median(ratios),
            "producer_to_router_cpu_ratio_by_round": ratios,
        }
        for name in ("router", "producer"):
            for figure in ("cpu_ms_per_event", "latency_p50_ms", "latency_p99_ms"):
                figures[f"{name}_{figure}"] = median(across(rounds, rate, name, figure))
            missed = across(rounds, rate, name, "events_missed")
            figures[f"{name}_events_missed"] = int(sum(missed)) if missed else None
        result[f"{rate:g}_events_per_s"] = figures
    return {"median_of_rounds": result}


def mode(args: argparse.Namespace) -> str:
    if args.only is not None:
        return f"{args.only} alone"
    return "alternating, the other paused" if args.alternate else "side by side"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--rate", type=float, action="append", help="events/s of a steady phase (50 and 5)"
    )
    parser.add_argument("--seconds", type=float, default=30, help="length of each rate's phase")
    parser.add_argument("--idle-seconds", type=float, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--posters", type=int, default=1, help="posting processes")
    parser.add_argument("--router", type=Path, help="the router binary (see bench.veba_router)")
    parser.add_argument(
        "--router-checkpoint",
        action="store_true",
        help="the router's checkpoint: true (a file every 5 s); the appliance runs without",
    )
    parser.add_argument("--only", choices=["router", "producer"], help="run one, not both")
    parser.add_argument(
        "--alternate",
        action="store_true",
        help="a phase per reader and rate, the other paused (SIGSTOP), not side by side",
    )
    parser.add_argument(
        "--tree", type=Path, default=REPO, help="checkout whose producer runs (default this one)"
    )
    add_producer_settings(parser)
    args = parser.parse_args()
    rates = args.rate or [50.0, 5.0]

    bench = Bench(args, Path(tempfile.mkdtemp(prefix="bench-producer-router-")))
    try:
        bench.warm_up()
        rounds = []
        order = sorted(bench.runs)  # producer, router
        for number in range(1, args.rounds + 1):
            order.reverse()  # each goes first in every other round: no order favours one
            one = {
                "round": number,
                "idle": bench.idle(args.idle_seconds),
                "steady": [bench.rate(rate, args.seconds, order) for rate in rates],
                "load_average_1m": round(os.getloadavg()[0], 2),
            }
            print(json.dumps(one), file=sys.stderr)
            rounds.append(one)
        result: dict[str, Any] = {
            "benchmark": "producer_router",
            "mode": mode(args),
            **summary(rounds, rates),
            "rounds": rounds,
        }
        if "router" in bench.runs:
            result["router"] = {
                **veba_router.describe(bench.binary, args.router_checkpoint),
                "peak_rss_mb": round(bench.router.peak_rss_mb(), 1),
            }
        if "producer" in bench.runs:
            result["producer"] = {
                "tree": str(args.tree),
                "settings": producer_settings(args),
                "peak_rss_mb": round(bench.producer.peak_rss_mb(), 1),
            }
        result["machine"] = machine()
        print(json.dumps(result, indent=2))
    finally:
        bench.close()


if __name__ == "__main__":
    main()
