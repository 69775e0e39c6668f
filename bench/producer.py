"""The producer's speed: vcsim events → committed Kafka records.

    .venv/bin/python -m bench.producer [--rate 500 [--rate 50 ...]] [--seconds 20]
        [--page-size 100] [--idle-seconds 20] [--commit-interval 170ms] [--rounds 3]
        [--producer-setting KEY=VALUE ...]
        [--live-events 5000] [--tree CHECKOUT]

Starts a private Kafka broker and vcsim, runs `vcstream produce` as a subprocess, posts
EventEx through the real API from processes of their own (devenv.activity.
EventFlood), and watches with a read_committed consumer in another process (a record
is seen only once its transaction committed). Five figures:

- idle: `--idle-seconds` with no events: each process's CPU (percent of a core) and
  the transactions the producer committed (none are due);
- generator: what vcsim and the posting processes manage with the producer paused
  (SIGSTOP), i.e. the ceiling of everything below; every other rate is bounded by it;
- drain: a backlog (below vcsim's ~1,000-event history) posted while the producer is
  paused, then the events/s until all of it is committed, best of `--rounds`;
- live: `--live-events` posted as fast as the generator goes while the producer runs:
  the rate both reach together, and whether the producer kept up (events missed);
- steady: `--rate` events/s for `--seconds` (a phase per `--rate` given): latency from
  createdTime to committed (p50/p99/max), transactions per second, events per
  transaction, the events missed (the producer's own gap metric), and the producer's
  CPU and wake-ups split between its Python threads and librdkafka's.

Plus the producer's CPU per event and peak RSS, and the ratio of the drain rate to
bench.kafka_ceiling's raw produce rate on the same broker. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from bench import kafka_ceiling
from bench.machine import machine
from devenv import LocalKafka, LocalVcsim
from devenv.event_flood import EventFlood, Posted

REPO = Path(__file__).resolve().parents[1]
BENCH_TYPE = b"com.vmware.vsphere.com.example.bench.v0"


def read_committed(bootstrap: str, topic: str, partitions: int, out: Any, halt: Any) -> None:
    """In its own process, so no other work delays a timestamp: sends (committed at,
    created at) for each bench event as it becomes visible."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 20,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    while not halt.is_set():
        batch = []
        # poll returns with the first record, consume(timeout=0) takes what else is there:
        # consume(1000, timeout=0.05) waited out its timeout unless 1,000 came, and added
        # up to 50 ms to every latency measured
        first = consumer.poll(0.05)
        if first is None:
            continue
        for message in [first, *consumer.consume(1000, timeout=0)]:
            if message.error():
                continue
            headers = dict(message.headers() or [])
            if headers.get("ce_type") != BENCH_TYPE:
                continue
            seen_at = time.time()
            raw = headers.get("ce_time") or b""
            stamp = raw.decode() if isinstance(raw, bytes) else raw
            created = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            batch.append((seen_at, created.timestamp()))
        if batch:
            out.put(batch)
    consumer.close()


class CommittedReader:
    """Collects what the reader process saw."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self.queue: Any = multiprocessing.Queue()
        self.halt = multiprocessing.Event()
        self.process = multiprocessing.Process(
            target=read_committed,
            args=(bootstrap, topic, partitions, self.queue, self.halt),
            daemon=True,
        )
        self.seen: list[tuple[float, float]] = []  # (committed at, created at), epoch s

    def start(self) -> None:
        self.process.start()

    def stop(self) -> None:
        self.halt.set()
        self.process.join(10)

    def collect(self, count: int, timeout: float) -> int:
        """Wait until `count` events were seen in all, or `timeout`; how many were."""
        deadline = time.monotonic() + timeout
        while len(self.seen) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                self.seen += self.queue.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
        return len(self.seen)

    def settle(self, quiet: float = 3.0) -> None:
        """Take in whatever is still coming, until nothing came for `quiet` seconds."""
        while True:
            try:
                self.seen += self.queue.get(timeout=quiet)
            except queue.Empty:
                return


class ProducerUnderTest:
    """`vcstream produce` in a subprocess: paused, resumed, measured, scraped."""

    def __init__(self, config: Path, log: Path, tree: Path = REPO) -> None:
        self.log_path = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cli", "produce", "--config", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=tree,
                # the producer of `tree`, measured by this bench (A/B in one window)
                env={**os.environ, "PYTHONPATH": str(tree)},
            )
        self._metrics_port: int | None = None

    def pause(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def missed(self) -> float:
        """Events the producer knows it missed: its own gap metric (0 when none)."""
        return self.metric("vcstream_producer_events_missed_total")

    def transactions(self) -> float:
        return self.metric("vcstream_producer_transactions_committed_total")

    def metric(self, name: str) -> float:
        """The sum of a metric's samples on the producer's /metrics (0 when none)."""
        if self._metrics_port is None:
            found = re.findall(r"/healthz on port (\d+)", self.log_path.read_text())
            if not found:
                raise RuntimeError(f"the producer never said its metrics port: {self.log_path}")
            self._metrics_port = int(found[-1])
        url = f"http://127.0.0.1:{self._metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def stop(self) -> None:
        self.resume()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(60)


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU per event of each process taking part, over one phase: where the machine's
    time goes (two cores are shared by all of them)."""

    def __init__(self, pids: dict[str, list[int]]) -> None:
        self.pids = pids
        self.start = self._now()

    def _now(self) -> dict[str, float]:
        return {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in self.pids.items()}

    def per_event_ms(self, events: int) -> dict[str, float]:
        now = self._now()
        return {
            f"{name}_cpu_ms_per_event": round((now[name] - self.start[name]) * 1000 / events, 3)
            for name in self.pids
            if events
        }


class ThreadMeter:
    """On-CPU time and wake-ups (voluntary context switches) of a process's threads over
    one phase, by thread name: Python's threads all carry the process's name, librdkafka
    names its own (rdk:main, rdk:broker<id>; the transaction coordinator's is a logical
    broker, rdk:broker-1)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.start = self._now()
        self.began = time.monotonic()

    def _now(self) -> dict[str, tuple[str, float, int]]:
        threads: dict[str, tuple[str, float, int]] = {}
        for tid in os.listdir(f"/proc/{self.pid}/task"):
            task = Path(f"/proc/{self.pid}/task/{tid}")
            try:
                name = (task / "comm").read_text().strip()
                on_cpu_s = int((task / "schedstat").read_text().split()[0]) / 1e9
                status = (task / "status").read_text()
            except OSError:  # the thread ended meanwhile
                continue
            switches = re.search(r"^voluntary_ctxt_switches:\s+(\d+)", status, re.MULTILINE)
            threads[tid] = (name, on_cpu_s, int(switches.group(1)) if switches else 0)
        return threads

    def report(self, events: int, transactions: float) -> dict[str, Any]:
        now, seconds = self._now(), time.monotonic() - self.began
        groups: dict[str, list[float]] = {}
        for tid, (name, cpu, wakeups) in now.items():
            _, cpu_before, wakeups_before = self.start.get(tid, (name, 0.0, 0))
            group = name if name.startswith("rdk:") else "python"
            total = groups.setdefault(group, [0.0, 0.0])
            total[0] += cpu - cpu_before
            total[1] += wakeups - wakeups_before
        rdk = [v for k, v in groups.items() if k.startswith("rdk:")]
        groups["librdkafka"] = [sum(v[0] for v in rdk), sum(v[1] for v in rdk)]
        per_txn = max(transactions, 1)
        return {
            name: {
                "cpu_ms_per_s": round(cpu * 1000 / seconds, 2),
                "cpu_ms_per_event": round(cpu * 1000 / max(events, 1), 3),
                "cpu_ms_per_transaction": round(cpu * 1000 / per_txn, 3),
                "wakeups_per_s": round(wakeups / seconds, 1),
                "wakeups_per_transaction": round(wakeups / per_txn, 1),
            }
            for name, (cpu, wakeups) in sorted(groups.items())
        }


def write_config(
    path: Path,
    broker: LocalKafka,
    sim: LocalVcsim,
    page_size: int,
    log_level: str,
    producer_settings: dict[str, str],
    client_properties: dict[str, str],
) -> Path:
    # a setting not given: the producer's own default, whichever checkout runs
    extra = "".join(f"\n  {key}: {value}" for key, value in producer_settings.items())
    path.write_text(
        f"""
kafka: {{bootstrapServers: "{broker.bootstrap_servers}", clientProperties: {
            json.dumps(client_properties)
        }}}
vcenters:
  - name: bench
    url: {sim.url}
    username: {sim.username}
    password: {sim.password}
    caFile: {sim.ca_file}
producer:
  startAt: now
  pageSize: {page_size}{extra}
metrics: {{port: 0}}
logging: {{level: {log_level}}}
"""
    )
    return path


def add_producer_settings(parser: argparse.ArgumentParser) -> None:
    """--commit-interval and --producer-setting, for `producer_settings`."""
    parser.add_argument(
        "--commit-interval", help="producer.commitInterval (default: the producer's own)"
    )
    parser.add_argument(
        "--producer-setting",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a producer.* setting by its YAML name (batchScheduling=false), repeatable",
    )


def producer_settings(args: argparse.Namespace) -> dict[str, str]:
    """The producer.* settings the command line gives (the rest: the producer's defaults)."""
    settings = dict(pair.split("=", 1) for pair in args.producer_setting)
    if args.commit_interval is not None:
        settings["commitInterval"] = args.commit_interval
    return settings


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latency_ms(seen: list[tuple[float, float]]) -> dict[str, float]:
    latencies = [committed - created for committed, created in seen]
    if not latencies:
        return {}
    return {
        "latency_p50_ms": round(percentile(latencies, 0.50) * 1000, 1),
        "latency_p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "latency_max_ms": round(max(latencies) * 1000, 1),
    }


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.broker = LocalKafka(workdir / "kafka", heap="1g").start()
        self.sim = LocalVcsim(workdir / "vcsim").start()
        config = write_config(
            workdir / "vcstream.yaml",
            self.broker,
            self.sim,
            args.page_size,
            args.log_level,
            producer_settings(args),
            dict(pair.split("=", 1) for pair in args.client_property),
        )
        self.producer = ProducerUnderTest(config, workdir / "producer.log", args.tree)
        self.flood = EventFlood(self.sim, processes=args.posters)
        self.reader = CommittedReader(self.broker.bootstrap_servers, "vcenter.events", 6)
        self.expected = 0  # bench events posted so far

    def close(self) -> None:
        self.reader.stop()
        self.flood.close()
        self.producer.stop()
        self.sim.stop()
        self.broker.stop()

    def wait_until_streaming(self) -> None:
        deadline = time.monotonic() + 120
        while "vcenter.events" not in broker_topics(self.broker):  # made at start
            if time.monotonic() > deadline:
                raise TimeoutError(f"the producer never started: {self.producer.log_path}")
            time.sleep(0.5)
        time.sleep(3)  # resume, alarm snapshot, first WaitForUpdatesEx
        self.reader.start()

    def cpu_meter(self) -> CpuMeter:
        return CpuMeter(
            {
                "producer": [self.producer.process.pid],
                "vcsim": [self.sim.child.pid],
                "generator": self.flood.pids,
                "kafka": [self.broker.child.pid],
            }
        )

    def post(self, events: int, rate: float | None = None) -> Posted:
        posted = self.flood.post(events, rate)
        self.expected += events
        return posted

    def drain_rounds(self) -> dict[str, Any]:
        drained: list[float] = []
        generated: list[float] = []
        generating: dict[str, float] = {}
        draining: dict[str, float] = {}
        for _ in range(self.args.rounds):
            self.producer.pause()
            try:
                cpu = self.cpu_meter()
                generated.append(self.post(self.args.backlog).events_per_s)
                generating = cpu.per_event_ms(self.args.backlog)
            finally:
                resumed = time.time()
                cpu = self.cpu_meter()
                self.producer.resume()
            if self.reader.collect(self.expected, 120) < self.expected:
                raise TimeoutError(f"backlog not committed: see {self.producer.log_path}")
            done = self.reader.seen[self.expected - 1][0]
            draining = cpu.per_event_ms(self.args.backlog)
            drained.append(self.args.backlog / (done - resumed))
            print(f"drain round: {drained[-1]:.0f} events/s", file=sys.stderr)
        return {
            "generator_alone": {
                "events_per_s": round(max(generated), 1),
                **{k: v for k, v in generating.items() if not k.startswith("producer")},
            },
            "drain": {
                "backlog_events": self.args.backlog,
                "rounds": self.args.rounds,
                "committed_events_per_s": round(max(drained), 1),
                "committed_events_per_s_median": round(sorted(drained)[len(drained) // 2], 1),
                **draining,
            },
        }

    def idle(self, seconds: float) -> dict[str, Any]:
        """What each process costs while the vCenter has nothing to say."""
        self.reader.settle(quiet=2)
        transactions = self.producer.transactions()
        cpu = self.cpu_meter()
        time.sleep(seconds)
        return {
            "seconds": seconds,
            **{
                name.replace("_cpu_ms_per_event", "_cpu_percent"): round(ms / 10 / seconds, 2)
                for name, ms in cpu.per_event_ms(1).items()
                if not name.startswith("generator")
            },
            "transactions": int(self.producer.transactions() - transactions),
        }

    def phase(self, events: int, rate: float | None) -> dict[str, Any]:
        """Post while the producer runs; what was committed, how late, what was missed."""
        first = len(self.reader.seen)
        missed_before = self.producer.missed()
        transactions = self.producer.transactions()
        cpu = self.cpu_meter()
        threads = ThreadMeter(self.producer.process.pid)
        posted = self.post(events, rate)
        self.reader.collect(self.expected, 60)
        self.reader.settle(quiet=2)
        seen = self.reader.seen[first:]
        committed_by = max((at for at, _ in seen), default=posted.began)
        committed_transactions = self.producer.transactions() - transactions
        result = {
            "events_posted": events,
            "posted_events_per_s": round(posted.events_per_s, 1),
            "events_committed": len(seen),
            "committed_events_per_s": round(len(seen) / (committed_by - posted.began), 1),
            "events_missed": int(self.producer.missed() - missed_before),
            "transactions_per_s": round(committed_transactions / (committed_by - posted.began), 1),
            "events_per_transaction": round(len(seen) / max(committed_transactions, 1), 2),
            **latency_ms(seen),
            **cpu.per_event_ms(events),
            "producer_threads": threads.report(events, committed_transactions),
        }
        self.expected = len(self.reader.seen)  # a lost event never arrives: count anew
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--posters", type=int, default=2, help="posting processes")
    parser.add_argument("--backlog", type=int, default=900, help="events per drain round")
    parser.add_argument("--rounds", type=int, default=3, help="drain rounds (0: none)")
    parser.add_argument("--live-events", type=int, default=5000, help="0: no live phase")
    parser.add_argument(
        "--rate",
        type=float,
        action="append",
        help="steady events/s for latency (default 500); repeat for a phase at each",
    )
    parser.add_argument("--seconds", type=float, default=20, help="length of the steady run")
    parser.add_argument("--ceiling-records", type=int, default=50_000)
    add_producer_settings(parser)
    parser.add_argument("--idle-seconds", type=float, default=20, help="length of the idle run")
    parser.add_argument(
        "--client-property",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a librdkafka property for the producer (kafka.clientProperties), repeatable",
    )
    parser.add_argument(
        "--tree",
        type=Path,
        default=REPO,
        help="checkout whose producer runs (default this one): to compare two in one window",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO"], help="DEBUG: commit timings"
    )
    args = parser.parse_args()

    bench = Bench(args, Path(tempfile.mkdtemp(prefix="bench-producer-")))
    print(f"producer log: {bench.producer.log_path}", file=sys.stderr)
    try:
        bench.wait_until_streaming()
        idle = bench.idle(args.idle_seconds)
        drain = bench.drain_rounds() if args.rounds else {}
        live = bench.phase(args.live_events, None) if args.live_events else {}
        print(f"live: {live.get('committed_events_per_s', 0):.0f} events/s", file=sys.stderr)
        steady = [
            {"target_events_per_s": rate, **bench.phase(int(rate * args.seconds), rate)}
            for rate in args.rate or [500]
        ]
        ceiling = kafka_ceiling.produce(
            bench.broker.bootstrap_servers,
            ensure_ceiling_topic(bench.broker),
            args.ceiling_records,
            kafka_ceiling.sample_value(),
        )
        result: dict[str, Any] = {
            "benchmark": "producer",
            "page_size": args.page_size,
            "producer_settings": producer_settings(args),
            "posters": args.posters,
            "idle": idle,
            **drain,
            "live": live,
            # one rate: its phase, as before; several: a list, in the order given
            "steady": steady[0] if len(steady) == 1 else steady,
            "producer_peak_rss_mb": round(bench.producer.peak_rss_mb(), 1),
            "kafka_ceiling_produce_records_per_s": round(ceiling["records_per_s"], 1),
            "ratio_to_kafka_ceiling": round(
                drain["drain"]["committed_events_per_s"] / ceiling["records_per_s"], 4
            )
            if drain
            else None,
            "machine": machine(),
        }
        print(json.dumps(result, indent=2))
    finally:
        bench.close()


def broker_topics(broker: LocalKafka) -> set[str]:
    consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": "bench-probe"})
    try:
        return set(consumer.list_topics(timeout=10).topics)
    finally:
        consumer.close()


def ensure_ceiling_topic(broker: LocalKafka) -> str:
    from vcstream.kafka import TopicSpec, ensure_topics
    from vcstream.settings.kafka import KafkaSettings

    topic = f"ceiling.{uuid.uuid4().hex[:8]}"
    ensure_topics(KafkaSettings(bootstrapServers=broker.bootstrap_servers), [TopicSpec(topic, 6)])
    return topic


if __name__ == "__main__":
    main()
