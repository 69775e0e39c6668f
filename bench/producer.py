"""The producer's speed: vcsim events → committed Kafka records.

    .venv/bin/python -m bench.producer [--page-size 100] [--rate 500] [--seconds 10]

Starts a private Kafka broker and vcsim, runs `vcstream produce` as a subprocess, and
measures with a read_committed consumer (a record is seen only once its transaction
committed):

- throughput with generation saturated: the producer is paused (SIGSTOP) while a
  backlog of events is posted (below vcsim's ~1,000-event history), then resumed; the
  events/s until the whole backlog is committed, best of `--rounds`;
- latency createdTime → committed (p50/p99) at a steady `--rate` events/s;
- the producer's peak RSS, and the ratio of throughput to bench.kafka_ceiling's raw
  produce rate on the same broker.

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import platform
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from pyVim.connect import SmartConnect
from pyVmomi import vim

from bench import kafka_ceiling
from vcstream.devenv import LocalKafka, LocalVcsim

REPO = Path(__file__).resolve().parents[1]


class Poster:
    """Posts EventEx through the real API from a few threads (one session each)."""

    def __init__(self, sim: LocalVcsim, threads: int = 3) -> None:
        self.clients = [self._connect(sim) for _ in range(threads)]

    @staticmethod
    def _connect(sim: LocalVcsim) -> tuple[Any, Any]:
        si = SmartConnect(
            host="127.0.0.1",
            port=sim.port,
            user=sim.username,
            pwd=sim.password,
            sslContext=sim.ssl_context(),
        )
        content = si.RetrieveContent()
        view = content.viewManager.CreateContainerView(
            content.rootFolder, [vim.VirtualMachine], True
        )
        return si, view.view[0]

    def post(self, count: int, rate: float | None = None) -> float:
        """Post `count` events (at `rate`/s overall, or as fast as possible); seconds taken."""
        began = time.perf_counter()
        share = [count // len(self.clients)] * len(self.clients)
        share[0] += count - sum(share)

        def run(client: tuple[Any, Any], n: int) -> None:
            si, vm = client
            interval = len(self.clients) / rate if rate else 0.0
            for index in range(n):
                if interval:
                    delay = began + index * interval - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                si.content.eventManager.PostEvent(
                    vim.event.EventEx(
                        eventTypeId="com.example.bench",
                        createdTime=si.CurrentTime(),
                        userName="",
                        key=0,
                        chainId=0,
                        objectId=vm._moId,
                        objectType=vim.VirtualMachine,
                        message=f"bench {index}",
                    )
                )

        pairs = zip(self.clients, share, strict=True)
        threads = [threading.Thread(target=run, args=pair) for pair in pairs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.perf_counter() - began


def read_committed(bootstrap: str, topic: str, partitions: int, out: Any, halt: Any) -> None:
    """In its own process, so the posting threads' GIL never delays a timestamp: sends
    (committed at, created at) for each bench event as it becomes visible."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 50,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    while not halt.is_set():
        batch = []
        for message in consumer.consume(1000, timeout=0.05):
            if message.error():
                continue
            headers = dict(message.headers() or [])
            if headers.get("ce_type") != b"com.vmware.vsphere.com.example.bench.v0":
                continue
            raw = headers.get("ce_time") or b""
            stamp = raw.decode() if isinstance(raw, bytes) else raw
            created = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            batch.append((time.time(), created.timestamp()))
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

    def wait_for(self, count: int, timeout: float = 300) -> float:
        deadline = time.monotonic() + timeout
        while len(self.seen) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"only {len(self.seen)} of {count} events committed")
            try:
                self.seen += self.queue.get(timeout=min(remaining, 1))
            except queue.Empty:
                continue
        return self.seen[count - 1][0]


def write_config(path: Path, broker: LocalKafka, sim: LocalVcsim, page_size: int) -> Path:
    path.write_text(
        f"""
kafka: {{bootstrapServers: "{broker.bootstrap_servers}"}}
vcenters:
  - name: bench
    url: {sim.url}
    username: {sim.username}
    password: {sim.password}
    caFile: {sim.ca_file}
producer:
  startAt: now
  pageSize: {page_size}
metrics: {{port: 0}}
logging: {{level: WARNING}}
"""
    )
    return path


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--backlog", type=int, default=900, help="events per saturated round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=500, help="steady events/s for latency")
    parser.add_argument("--seconds", type=float, default=10, help="length of the steady run")
    parser.add_argument("--ceiling-records", type=int, default=50_000)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-producer-"))
    broker = LocalKafka(workdir / "kafka", heap="1g").start()
    sim = LocalVcsim(workdir / "vcsim").start()
    config = write_config(workdir / "vcstream.yaml", broker, sim, args.page_size)
    log = (workdir / "producer.log").open("wb")
    producer = subprocess.Popen(
        [sys.executable, "-m", "vcstream", "produce", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    reader: CommittedReader | None = None
    try:
        poster = Poster(sim)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the producer creates its topic at start
            if "vcenter.events" in broker_topics(broker):
                break
            time.sleep(0.5)
        time.sleep(3)  # resume, alarm snapshot, first WaitForUpdatesEx
        reader = CommittedReader(broker.bootstrap_servers, "vcenter.events", 6)
        reader.start()

        saturated: list[float] = []
        generated: list[float] = []
        expected = 0
        for _ in range(args.rounds):
            os.kill(producer.pid, signal.SIGSTOP)
            try:
                generated.append(args.backlog / poster.post(args.backlog))
            finally:
                resumed = time.time()
                os.kill(producer.pid, signal.SIGCONT)
            expected += args.backlog
            done = reader.wait_for(expected)
            saturated.append(args.backlog / (done - resumed))
            print(f"saturated round: {saturated[-1]:.0f} events/s", file=sys.stderr)

        steady_count = int(args.rate * args.seconds)
        posted_in = poster.post(steady_count, rate=args.rate)
        print(f"steady: posted {steady_count} in {posted_in:.1f}s", file=sys.stderr)
        # falling behind by more than vcsim keeps loses events: reported, not hidden
        with contextlib.suppress(TimeoutError):
            reader.wait_for(expected + steady_count, timeout=60)
        steady = reader.seen[expected : expected + steady_count]
        latencies = [committed - created for committed, created in steady]
        rss = peak_rss_mb(producer.pid)
        ceiling = kafka_ceiling.produce(
            broker.bootstrap_servers,
            ensure_ceiling_topic(broker),
            args.ceiling_records,
            kafka_ceiling.sample_value(),
        )
        best = max(saturated)
        result: dict[str, Any] = {
            "benchmark": "producer",
            "page_size": args.page_size,
            "saturated": {
                "backlog_events": args.backlog,
                "rounds": args.rounds,
                "committed_events_per_s": round(best, 1),
                "committed_events_per_s_median": round(statistics.median(saturated), 1),
                "generation_events_per_s": round(statistics.median(generated), 1),
            },
            "steady": {
                "target_events_per_s": args.rate,
                "achieved_events_per_s": round(steady_count / posted_in, 1),
                "events": steady_count,
                "events_committed": len(steady),
                "latency_p50_ms": round(percentile(latencies, 0.50) * 1000, 1),
                "latency_p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
                "latency_max_ms": round(max(latencies) * 1000, 1),
            },
            "producer_peak_rss_mb": round(rss, 1),
            "kafka_ceiling_produce_records_per_s": round(ceiling["records_per_s"], 1),
            "ratio_to_kafka_ceiling": round(best / ceiling["records_per_s"], 4),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        }
        print(json.dumps(result, indent=2))
    finally:
        if reader is not None:
            reader.stop()
        producer.send_signal(signal.SIGTERM)
        producer.wait(60)
        sim.stop()
        broker.stop()


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
