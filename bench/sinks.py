"""Sink throughput and delivery latency: Knative (local receiver), audit files, PostgreSQL.

    .venv/bin/python -m bench.sinks [--events 20000] [--partitions 3] [--rate 200]

Per sink, two phases on a private local broker (and PostgreSQL):
- throughput: `--events` VmPoweredOnEvents already in the topic; events/s from the
  first delivery to the last, and its ratio to the raw consume ceiling of the same
  records on the same broker (bench.kafka_ceiling's consumer);
- latency: events produced at `--rate`/s for `--seconds`; p50/p99 from the broker
  appending the record (LogAppendTime) to the target's acknowledgement.
The Knative receiver runs in its own process (aiohttp, answers 202), so it does not
share this process's CPU time. Prints one JSON object; peak RSS is this process's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from bench.kafka_ceiling import consume as ceiling_consume
from bench.machine import machine
from devenv import LocalKafka, LocalPostgres
from devenv.process import free_port, wait_until
from schemas.codec import encode_vsphere
from schemas.record import KafkaRecord
from schemas.vsphere import VCenterIdentity
from sinks import registry
from sinks.runtime import SinkRunner
from vcstream.kafka import TopicSpec, ensure_topics
from vcstream.settings import Settings

VCENTER = VCenterIdentity("5a1b1f6c-0c4d-4a8e-9b43-3e2f7c9d0a11", "https://vc01/sdk", "8.0.3.0")


def receiver_main(port: int) -> None:
    from aiohttp import web

    async def accept(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=202)

    app = web.Application()
    app.router.add_post("/", accept)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def powered_on(
    index: int, message: str, vcenter: VCenterIdentity = VCENTER, **more: Any
) -> KafkaRecord:
    """The index-th VmPoweredOnEvent, of one of 500 VMs (so 500 keys); `{vm}` in the
    message is the VM's number."""
    vm = index % 500
    data = {
        "Key": index,
        "ChainId": index,
        "CreatedTime": f"2026-11-22T12:{index // 60 % 60:02d}:{index % 60:02d}Z",
        "UserName": "VSPHERE.LOCAL\\Administrator",
        "FullFormattedMessage": message.format(vm=vm),
        "Vm": {"Name": f"vm{vm}", "Vm": {"Type": "VirtualMachine", "Value": f"vm-{vm}"}},
        **more,
    }
    return encode_vsphere(data, "VmPoweredOnEvent", vcenter)


def produce(bootstrap: str, topic: str, count: int, start: int = 0, rate: float = 0) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5 if not rate else 0})
    began = time.monotonic()
    for index in range(start, start + count):
        record = powered_on(index, "vm-{vm} powered on " + "x" * 600)
        headers: list[tuple[str, str | bytes | None]] = list(record.headers)
        while True:
            try:
                producer.produce(topic, value=record.value, key=record.key, headers=headers)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
        if rate:
            ahead = began + (index - start + 1) / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
    producer.flush(60)


class Timing:
    """Wraps a sink's `deliver` to time acknowledgements against Kafka timestamps."""

    def __init__(self, runner: SinkRunner) -> None:
        self.latencies: list[float] = []
        self.appended_ms: list[int] = []  # the records' timestamps (LogAppendTime)
        self.first: float | None = None
        self.last = 0.0
        deliver = runner.sink.deliver

        async def timed(batch: Any) -> Any:
            if self.first is None:
                self.first = time.monotonic()
            outcomes = await deliver(batch)
            now, self.last = time.time(), time.monotonic()
            for item, outcome in zip(batch, outcomes, strict=True):
                if outcome is None and item.record.timestamp_ms:
                    self.latencies.append(now - item.record.timestamp_ms / 1000)
                    self.appended_ms.append(item.record.timestamp_ms)
            return outcomes

        runner.sink.deliver = timed  # type: ignore[method-assign]


def run_phase(runner: SinkRunner, total: int, feed: threading.Thread | None = None) -> Timing:
    timing = Timing(runner)

    async def main() -> None:
        stop = asyncio.Event()

        async def watch() -> None:
            if feed is not None:  # produce once partitions are assigned: time the sink,
                while runner.kafka_health() is not None:  # not the group join
                    await asyncio.sleep(0.02)
                feed.start()
            while runner.report.delivered < total:
                await asyncio.sleep(0.02)
            stop.set()

        watcher = asyncio.create_task(watch())
        await runner.run(stop)
        await watcher

    asyncio.run(main())
    return timing


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_sink(
    name: str, kind: str, section: dict[str, Any], bootstrap: str, args: argparse.Namespace
) -> dict[str, Any]:
    topics = [f"bench.{name}.{phase}.{os.getpid()}" for phase in ("backlog", "paced")]
    ensure_topics(
        Settings(kafka={"bootstrapServers": bootstrap}).kafka,
        # LogAppendTime: latency counts from the broker having the record, so the
        # producer's own queueing is not charged to the sink
        [
            TopicSpec(t, args.partitions, extra={"message.timestamp.type": "LogAppendTime"})
            for t in topics
        ]
        + [TopicSpec("bench.dlq")],
    )
    produce(bootstrap, topics[0], args.events)
    ceiling = ceiling_consume(bootstrap, topics[0], args.partitions, args.events)
    results: dict[str, Any] = {}
    for phase, topic in zip(("throughput", "latency"), topics, strict=True):
        settings = Settings(
            kafka={"bootstrapServers": bootstrap},
            sinks={kind: {**section, "topics": [topic], "groupId": f"bench-{name}-{phase}",
                          "delivery": {"deadLetterTopic": "bench.dlq"}}},
        )  # fmt: skip
        runner = SinkRunner(
            registry.create_sink(kind, settings),
            settings.kafka,
            topics=[topic],
            group_id=f"bench-{name}-{phase}",
            dead_letter_topic="bench.dlq",
        )
        if phase == "throughput":
            timing = run_phase(runner, args.events)
            elapsed = timing.last - (timing.first or timing.last)
            results["events_per_s"] = round(args.events / elapsed, 1)
            results["ratio_to_kafka_consume_ceiling"] = round(
                results["events_per_s"] / ceiling["records_per_s"], 4
            )
        else:
            count = int(args.rate * args.seconds)
            feed = threading.Thread(target=produce, args=(bootstrap, topic, count, 0, args.rate))
            timing = run_phase(runner, count, feed)
            results["latency_at_rate_per_s"] = args.rate
            results["p50_latency_ms"] = round(statistics.median(timing.latencies) * 1000, 1)
            results["p99_latency_ms"] = round(percentile(timing.latencies, 0.99) * 1000, 1)
    results["peak_rss_mb_so_far"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
    )
    results["kafka_consume_ceiling_per_s"] = round(ceiling["records_per_s"], 1)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--rate", type=float, default=200, help="events/s in the latency phase")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--only", help="comma-separated: knative,audit_files,audit_postgres")
    parser.add_argument("--receiver", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        receiver_main(args.receiver)
        return

    work = Path(tempfile.mkdtemp(prefix="bench-sinks-"))
    broker = LocalKafka(work / "kafka", heap="1g").start()
    postgres = LocalPostgres(work / "postgres").start()
    port = free_port()
    receiver = subprocess.Popen([sys.executable, "-m", "bench.sinks", "--receiver", str(port)])
    try:
        wait_until(lambda: _listening(port), 20, "bench receiver")
        batch = {"maxRecords": 500, "maxWait": "PT0.05S", "maxInFlight": args.partitions}
        sinks: dict[str, tuple[str, dict[str, Any]]] = {
            "knative": ("knative", {"url": f"http://127.0.0.1:{port}/", "concurrency": 32}),
            "audit_files": (
                "audit",
                {"backend": "files", "files": {"directory": str(work / "audit")}, "batch": batch},
            ),
            "audit_postgres": (
                "audit",
                {"backend": "postgres", "postgres": {"dsn": postgres.dsn}, "batch": batch},
            ),
        }
        result: dict[str, Any] = {
            "benchmark": "sinks",
            "events": args.events,
            "partitions": args.partitions,
            "machine": machine(),
            "sinks": {},
        }
        chosen = args.only.split(",") if args.only else list(sinks)
        for name in chosen:
            kind, section = sinks[name]
            result["sinks"][name] = bench_sink(name, kind, section, broker.bootstrap_servers, args)
        result["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(result, indent=2))
    finally:
        receiver.terminate()
        receiver.wait(10)
        postgres.stop()
        broker.stop()


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


if __name__ == "__main__":
    main()
