"""The Knative sink against a bare keep-alive client of the same library, one receiver.

    .venv/bin/python -m bench.knative [--events 20000] [--rate 2000] [--seconds 10]
        [--receiver lean|aiohttp] [--batch N] [--buffered N] [--idle-topics N]

`--batch` and `--buffered` set the sink's `batch.maxRecords` and `batch.maxBuffered`
(default: the sink's own defaults, so the bench measures what a user runs).

A private local broker, and one receiver in its own process answering 202: `lean` (the
default: an asyncio protocol that reads each request by its Content-Length, about as
cheap per request as Knative's Go ingress, so it caps the clients later) or `aiohttp`
(`bench.sinks`' receiver, which capped both clients near 4,000/s on this machine). The
receiver's CPU time in each phase is reported with it: a receiver near a CPU of its own
is the ceiling of both clients. Every phase runs in a process of its own, so its CPU
time and peak RSS are its own:
- bare: the sink's HTTP client (`sinks.http_client`) posting the same records'
  binary-mode requests (built beforehand, no Kafka) over `--connections` keep-alive
  connections: what the library and the receiver allow, the ceiling the sink is
  measured against; and aiohttp doing the same, for reference (the sink's former
  client);
- sink: the Knative sink (`SinkRunner`) reading `--events` records already in the
  topic and posting them to the same receiver; events/s from the first delivery to the
  last, and events per CPU-second of the sink's process over the same span;
- latency: records produced at `--rate`/s by another process while the sink runs; p50
  and p99 from the broker appending a record (LogAppendTime) to the receiver's answer;
  p99 also without the first `WARM_UP_S` seconds (the feed and the sink's connections
  warming up), and the most records appended in one second (a feed that fell behind
  catches up in bursts above the rate); beside it, a bare client posting at the same
  rate to the same receiver, its latency from each request's due time to its answer
  (what the receiver and the machine's load alone add);
- trickle (`--trickle-rate`/s for `--trickle-seconds`, 0 to skip): the sink's cost per
  event when events come one or a few at a time (the soak's 300/s), from the first
  delivery to the last: events per CPU-second of its process, and per second its batches,
  fetches, loop turns, commits and context switches (every thread's; each a wake-up);
  beside it, in the same run, a bare client posting the same requests one by one at the
  same rate to the same receiver, and a bare consumer reading the same feed (librdkafka's
  own cost at that rate): their costs per event add up to the trickle's ceiling.
Prints one JSON object: each phase with its 1-minute load average at its end, the sink
as a ratio to the bare client in events/s and in events per CPU-second; on a shared
machine a high load average means the wall rates are low bounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from confluent_kafka import Consumer, Producer

from bench.machine import machine
from bench.sinks import percentile, powered_on, run_phase
from devenv import LocalKafka
from devenv.process import free_port, wait_until
from schemas.record import KafkaRecord
from schemas.vsphere import VCenterIdentity
from sinks import registry
from sinks.http_client import HTTPClient
from sinks.runtime import SinkRunner
from vcstream.kafka import TopicSpec, ensure_topics
from vcstream.settings import Settings

PHASES = ["bare", "aiohttp", "sink", "latency", "trickle"]
HELPERS = ["bare_paced", "bare_latency", "bare_consume", "produce", "receive"]  # one process each
WARM_UP_S = 2  # the latency phase's first seconds, also reported without
VCENTER = VCenterIdentity("5a1b1f6c-0c4d-4a8e-9b43-3e2f7c9d0a11", "https://vc01/sdk", "8.0.3.0")


def records(count: int, start: int = 0, keys: int = 500) -> list[KafkaRecord]:
    """VmPoweredOnEvents over `keys` VMs (at most 500: `powered_on`'s), about VEBA's size;
    `start` a multiple of 500."""
    host = {"Name": "esx01", "Host": {"Type": "HostSystem", "Value": "host-19"}}
    message = "Virtual machine vm{vm} on esx01 in dc1 is powered on"
    indexes = (start + number % keys + 500 * (number // keys) for number in range(count))
    return [powered_on(index, message, VCENTER, Host=host) for index in indexes]


def produce(bootstrap: str, topic: str, batch: list[KafkaRecord], rate: float = 0) -> None:
    headers: list[list[tuple[str, str | bytes | None]]] = [list(r.headers) for r in batch]
    # linger 5 ms paced too: a request per record cost the shared broker CPU that the
    # latency phase then charged to the sink (latency counts from the broker's append)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    # connected before the clock starts: records paced while it connected went out in
    # one burst, which the latency phase then charged to the sink
    producer.list_topics(topic, timeout=30)
    began = time.monotonic()
    for number, record in enumerate(batch):
        while True:
            try:
                producer.produce(topic, value=record.value, key=record.key, headers=headers[number])
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
        if rate:
            # sleep only when 5 ms ahead: a sleep per record woke late on a busy machine
            # (ms each), so the rate fell to a quarter and then caught up in bursts
            ahead = began + (number + 1) / rate - time.monotonic()
            if ahead > 0.005:
                time.sleep(ahead)
    producer.flush(60)


def usage() -> dict[str, float]:
    """This process's CPU seconds (all threads) and peak RSS.

    Peak RSS is VmHWM: ru_maxrss would report the parent's peak, inherited at fork."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    status = Path("/proc/self/status").read_text()
    peak_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
    return {
        "cpu_s": own.ru_utime + own.ru_stime,
        "peak_rss_mb": peak_kb / 1024,
        "load_1m": os.getloadavg()[0],
    }


def context_switches() -> int:
    """Voluntary and involuntary context switches of every thread of this process."""
    total = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            status = (task / "status").read_text()
        except OSError:
            continue  # a thread that ended meanwhile
        for line in status.splitlines():
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                total += int(line.split()[1])
    return total


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of another process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Receiver(asyncio.Protocol):
    """Answers 202 to each POST, read by its Content-Length (the clients send one)."""

    ANSWER = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        answers = 0
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self.buffer[:end]).lower()
            length = head.find(b"content-length:")
            size = int(head[length + 15 :].split(b"\r\n", 1)[0]) if length >= 0 else 0
            if len(self.buffer) < end + 4 + size:
                break
            del self.buffer[: end + 4 + size]
            answers += 1
        if answers and self.transport is not None:
            self.transport.write(self.ANSWER * answers)


def lean_receiver(port: int) -> None:
    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(_Receiver, "127.0.0.1", port)
        await server.serve_forever()

    asyncio.run(serve())


# -- the phases, each in its own process ------------------------------------------------


async def bare(url: str, count: int, connections: int, library: str) -> dict[str, Any]:
    """A client alone: prebuilt requests, `connections` workers on as many connections.

    `library` is the sink's own client (`sinks.http_client`), or aiohttp for reference."""
    requests = [r.cloudevent().http_binary() for r in records(count)]
    if library == "aiohttp":
        connector = aiohttp.TCPConnector(limit=connections, keepalive_timeout=60)
        options: dict[str, Any] = {"cookie_jar": aiohttp.DummyCookieJar(), "auto_decompress": False}
        session = aiohttp.ClientSession(connector=connector, **options)

        async def post(headers: dict[str, str], body: bytes) -> int:
            async with session.post(url, data=body, headers=headers) as answer:
                await answer.read()
                return answer.status

        close = session.close
    else:
        client = HTTPClient(url, connections=connections, timeout=30)

        async def post(headers: dict[str, str], body: bytes) -> int:
            return (await client.post(headers, body)).status

        close = client.close
    work = iter(requests)

    async def worker() -> None:
        for headers, body in work:
            if (status := await post(headers, body)) != 202:
                raise RuntimeError(f"receiver answered {status}")

    await post({}, b"{}")  # connect before the clock starts
    cpu, began = usage()["cpu_s"], time.monotonic()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed, cpu = time.monotonic() - began, usage()["cpu_s"] - cpu
    await close()
    return {"events_per_s": count / elapsed, "events_per_cpu_s": count / cpu, **usage()}


async def bare_paced(url: str, rate: float, seconds: float) -> dict[str, Any]:
    """The sink's client posting prebuilt requests one at a time at `rate`/s: the cost
    per event of the HTTP part alone when events come one by one (no batching), and the
    latency from each request's due time to its answer: what the receiver and the
    machine's load alone add, the floor of the sink's latency at that rate."""
    count = int(rate * seconds)
    requests = [r.cloudevent().http_binary() for r in records(count)]
    client = HTTPClient(url, connections=32, timeout=30)
    pending: set[asyncio.Task[Any]] = set()
    latencies: list[float] = []

    async def post(due: float, headers: dict[str, str], body: bytes) -> None:
        await client.post(headers, body)
        latencies.append(time.monotonic() - due)

    await client.post({}, b"{}")  # connect before the clock starts
    cpu, switches, began = usage()["cpu_s"], context_switches(), time.monotonic()
    for number, (headers, body) in enumerate(requests):
        due = began + number / rate
        ahead = due - time.monotonic()
        if ahead > 0:
            await asyncio.sleep(ahead)
        task = asyncio.create_task(post(due, headers, body))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    elapsed, cpu = time.monotonic() - began, usage()["cpu_s"] - cpu
    switched = context_switches() - switches
    await client.close()
    return {
        "rate_per_s": rate,
        "events_per_s": count / elapsed,
        "events_per_cpu_s": count / cpu,
        "context_switches_per_s": switched / elapsed,
        "p50_ms": percentile(sorted(latencies), 0.5) * 1000,
        "p99_ms": percentile(sorted(latencies), 0.99) * 1000,
        **usage(),
    }


def bare_consume(bootstrap: str, topic: str, count: int) -> dict[str, Any]:
    """A consumer reading the paced feed as it comes (`consume(500, 0.1)`, as a filling
    sink fetches), no delivery, no commit: librdkafka's own cost per record at the rate."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-knative-bare-{topic}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    read, cpu, began, switches = 0, 0.0, 0.0, 0
    while read < count:
        for message in consumer.consume(500, 0.1):
            if message.error() is None:
                if not read:
                    cpu, switches, began = usage()["cpu_s"], context_switches(), time.monotonic()
                read += 1
    elapsed, cpu = time.monotonic() - began, usage()["cpu_s"] - cpu
    switched = context_switches() - switches
    consumer.close()
    return {
        "events_per_s": (read - 1) / elapsed,
        "events_per_cpu_s": (read - 1) / cpu,
        "context_switches_per_s": switched / elapsed,
        **usage(),
    }


class StatsRunner(SinkRunner):
    """A runner that keeps its consumer's request counts from librdkafka's statistics
    (every 5 s): what it asked the brokers for, whatever the runtime's code."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.requests: list[tuple[float, dict[str, int]]] = []  # (seconds, totals)
        super().__init__(*args, **kwargs)

    def _on_stats(self, stats_json: str) -> None:
        super()._on_stats(stats_json)
        stats = json.loads(stats_json)
        totals: dict[str, int] = {}
        for broker in stats.get("brokers", {}).values():
            for request, number in broker.get("req", {}).items():
                totals[request] = totals.get(request, 0) + number
        self.requests.append((stats["ts"] / 1e6, totals))

    def request_rates(self) -> dict[str, float | None]:
        if len(self.requests) < 2:
            return {"offset_commits_per_s": None, "fetch_requests_per_s": None}
        (began, first), (ended, last) = self.requests[0], self.requests[-1]
        return {
            f"{name}_per_s": (last.get(request, 0) - first.get(request, 0)) / (ended - began)
            for name, request in (("offset_commits", "OffsetCommit"), ("fetch_requests", "Fetch"))
        }


def sink_runner(
    bootstrap: str,
    url: str,
    topic: str,
    args: argparse.Namespace,
    runner_class: type[SinkRunner] = SinkRunner,
) -> SinkRunner:
    topics = [topic, *(args.idle.split(",") if args.idle else [])]
    section = {
        "url": url,
        "concurrency": args.connections,
        "topics": topics,
        "groupId": f"bench-knative-{topic}",
        "delivery": {"deadLetterTopic": "bench.knative.dlq"},
        # the sink's own batch settings unless given: the bench measures the default
        "batch": {"maxInFlight": args.partitions}
        | ({"maxRecords": args.batch} if args.batch else {})
        | ({"maxBuffered": args.buffered} if args.buffered else {}),
    }
    settings = Settings(kafka={"bootstrapServers": bootstrap}, sinks={"knative": section})
    return runner_class(
        registry.create_sink("knative", settings),
        settings.kafka,
        topics=topics,
        group_id=f"bench-knative-{topic}",
        dead_letter_topic="bench.knative.dlq",
    )


def sink(bootstrap: str, url: str, topic: str, args: argparse.Namespace) -> dict[str, Any]:
    runner = sink_runner(bootstrap, url, topic, args)
    cpu: list[float] = []
    first_deliver = runner.sink.deliver

    async def cpu_at_first(batch: Any) -> Any:  # CPU time from the first delivery on
        if not cpu:
            cpu.append(usage()["cpu_s"])
        return await first_deliver(batch)

    runner.sink.deliver = cpu_at_first  # type: ignore[method-assign]
    timing = run_phase(runner, args.events)
    cpu_s = usage()["cpu_s"] - cpu[0]
    elapsed = timing.last - (timing.first or timing.last)
    assert runner.report.dead_lettered == 0, runner.report
    return {
        "events_per_s": args.events / elapsed,
        "events_per_cpu_s": args.events / cpu_s,
        **usage(),
    }


def latency(bootstrap: str, url: str, topic: str, args: argparse.Namespace) -> dict[str, Any]:
    runner = sink_runner(bootstrap, url, topic, args)
    count = int(args.rate * args.seconds)
    argv = [sys.executable, "-m", "bench.knative", "--phase", "produce", "--bootstrap", bootstrap,
            "--topic", topic, "--events", str(count), "--rate", str(args.rate)]  # fmt: skip
    feed = threading.Thread(target=subprocess.run, args=(argv,), kwargs={"check": True})
    timing = run_phase(runner, count, feed)
    feed.join()
    ordered = sorted(timing.latencies)
    appended = sorted(timing.appended_ms)
    # after the first seconds: the feeding process and the sink's connections warm up
    # then, and a feed that fell behind caught up in bursts far above `rate`
    settled_from = appended[0] + WARM_UP_S * 1000
    settled = sorted(
        latency
        for latency, at in zip(timing.latencies, timing.appended_ms, strict=True)
        if at >= settled_from
    )
    return {
        "rate_per_s": args.rate,
        # what the broker took in: below rate_per_s when the feeding process was starved
        "appended_per_s": count / max((appended[-1] - appended[0]) / 1000, 1e-3),
        "events": count,
        "p50_ms": percentile(ordered, 0.5) * 1000,
        "p99_ms": percentile(ordered, 0.99) * 1000,
        "max_ms": ordered[-1] * 1000,
        "p99_after_warm_up_ms": percentile(settled, 0.99) * 1000 if settled else None,
        "warm_up_s": WARM_UP_S,
        # the most appended in one second: a rate far above rate_per_s is a burst
        "appended_peak_per_s": max(_per_second(appended).values()),
        **usage(),
    }


def trickle(bootstrap: str, url: str, topic: str, args: argparse.Namespace) -> dict[str, Any]:
    """The sink fed at `--trickle-rate`: its cost per event, and what it does per second."""
    runner = sink_runner(bootstrap, url, topic, args, StatsRunner)
    assert isinstance(runner, StatsRunner)
    count = int(args.trickle_rate * args.trickle_seconds)
    argv = [sys.executable, "-m", "bench.knative", "--phase", "produce", "--bootstrap", bootstrap,
            "--topic", topic, "--events", str(count), "--rate", str(args.trickle_rate),
            "--keys", str(args.trickle_keys)]  # fmt: skip
    feed = threading.Thread(target=subprocess.run, args=(argv,), kwargs={"check": True})
    counts = {"fetches": 0, "turns": 0, "batches": 0}
    start: list[tuple[float, int, float]] = []  # CPU, context switches, time at the first

    def counted(name: str, call: Any) -> Any:
        def count_call(*a: Any, **k: Any) -> Any:
            counts[name] += 1  # += on a dict item: one thread each, or under the GIL
            return call(*a, **k)

        return count_call

    # the runner's steps, counted from outside (bench code, not the runtime's API)
    runner._fetch = counted("fetches", runner._fetch)  # type: ignore[method-assign]
    runner._settle_finished = counted("turns", runner._settle_finished)  # type: ignore[method-assign]
    deliver = runner.sink.deliver

    async def first_counted(batch: Any) -> Any:
        if not start:
            start.append((usage()["cpu_s"], context_switches(), time.monotonic()))
            counts.update(fetches=0, turns=0, batches=0)
            runner.requests.clear()  # counted from the first statistics after this
        counts["batches"] += 1
        return await deliver(batch)

    runner.sink.deliver = first_counted  # type: ignore[method-assign]
    timing = run_phase(runner, count, feed)
    cpu_s, switched = usage()["cpu_s"] - start[0][0], context_switches() - start[0][1]
    feed.join()
    elapsed = timing.last - start[0][2]
    ordered = sorted(timing.latencies)
    return {
        "rate_per_s": args.trickle_rate,
        "events": count,
        "events_per_s": count / elapsed,
        "events_per_cpu_s": count / cpu_s,
        "cpu_us_per_event": cpu_s / count * 1e6,
        **{f"{name}_per_s": value / elapsed for name, value in counts.items()},
        # the consumer's requests to the brokers, from librdkafka's statistics
        **runner.request_rates(),
        "events_per_batch": count / max(counts["batches"], 1),
        "context_switches_per_s": switched / elapsed,
        "p50_ms": percentile(ordered, 0.5) * 1000,
        "p99_ms": percentile(ordered, 0.99) * 1000,
        **usage(),
    }


def _per_second(appended_ms: list[int]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for at in appended_ms:
        counts[at // 1000] = counts.get(at // 1000, 0) + 1
    return counts


def run_child(phase: str, args: argparse.Namespace, **extra: str) -> dict[str, Any]:
    argv = [sys.executable, "-m", "bench.knative", "--phase", phase, "--events", str(args.events),
            "--connections", str(args.connections), "--partitions", str(args.partitions),
            "--rate", str(args.rate), "--seconds", str(args.seconds),
            "--trickle-rate", str(args.trickle_rate),
            "--trickle-seconds", str(args.trickle_seconds),
            "--trickle-keys", str(args.trickle_keys),
            *(["--batch", str(args.batch)] if args.batch else []),
            *(["--buffered", str(args.buffered)] if args.buffered else [])]  # fmt: skip
    for name, value in extra.items():
        argv += [f"--{name}", value]
    done = subprocess.run(argv, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return {k: round(v, 1) if isinstance(v, float) else v for k, v in result.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--rate", type=float, default=2000, help="events/s, latency phase")
    parser.add_argument("--seconds", type=float, default=10, help="length of the latency phase")
    parser.add_argument("--trickle-rate", type=float, default=300, help="events/s; 0: skip")
    parser.add_argument("--trickle-seconds", type=float, default=30)
    parser.add_argument(
        "--trickle-keys",
        type=int,
        default=500,
        choices=range(1, 501),
        metavar="1-500",
        help="keys of the trickle's events (1: one hot VM, as in the soak: one at a time)",
    )
    parser.add_argument(
        "--idle-topics",
        type=int,
        default=0,
        help="topics with no events the trickle's sink also reads (the soak's sink reads 2)",
    )
    parser.add_argument("--idle", help=argparse.SUPPRESS)  # their names, for the child
    parser.add_argument("--keys", type=int, default=500, help=argparse.SUPPRESS)
    parser.add_argument(
        "--only", help="comma-separated phases to run: bare,aiohttp,sink,latency,trickle"
    )
    parser.add_argument("--receiver", choices=["lean", "aiohttp"], default="lean")
    parser.add_argument("--batch", type=int, help="the sink's batch.maxRecords (its default)")
    parser.add_argument("--buffered", type=int, help="the sink's batch.maxBuffered")
    parser.add_argument("--phase", choices=[*PHASES, *HELPERS])
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase == "receive":
        lean_receiver(args.port)
    elif args.phase == "produce":
        produce(args.bootstrap, args.topic, records(args.events, 10**6, args.keys), args.rate)
    elif args.phase in ("bare", "aiohttp"):
        result = asyncio.run(bare(args.url, args.events, args.connections, args.phase))
        print(json.dumps(result))
    elif args.phase == "sink":
        print(json.dumps(sink(args.bootstrap, args.url, args.topic, args)))
    elif args.phase == "latency":
        print(json.dumps(latency(args.bootstrap, args.url, args.topic, args)))
    elif args.phase == "trickle":
        print(json.dumps(trickle(args.bootstrap, args.url, args.topic, args)))
    elif args.phase == "bare_latency":
        print(json.dumps(asyncio.run(bare_paced(args.url, args.rate, args.seconds))))
    elif args.phase == "bare_paced":
        result = asyncio.run(bare_paced(args.url, args.trickle_rate, args.trickle_seconds))
        print(json.dumps(result))
    elif args.phase == "bare_consume":
        count = int(args.trickle_rate * args.trickle_seconds)
        print(json.dumps(bare_consume(args.bootstrap, args.topic, count)))
    else:
        print(json.dumps(orchestrate(args), indent=2))


def orchestrate(args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="bench-knative-"))
    broker = LocalKafka(work / "kafka", heap="1g").start()
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    if args.receiver == "lean":
        argv = [sys.executable, "-m", "bench.knative", "--phase", "receive", "--port", str(port)]
    else:
        argv = [sys.executable, "-m", "bench.sinks", "--receiver", str(port)]
    receiver = subprocess.Popen(argv)

    def measured(phase: str, **extra: str) -> dict[str, Any]:
        """The phase's result, with the receiver's CPU seconds over it."""
        before = cpu_seconds(receiver.pid)
        result = run_child(phase, args, url=url, **extra)
        result["receiver_cpu_s"] = round(cpu_seconds(receiver.pid) - before, 2)
        return result

    phases = args.only.split(",") if args.only else list(PHASES)
    unknown = set(phases) - set(PHASES)
    if unknown:
        raise SystemExit(f"--only: no such phase {', '.join(sorted(unknown))} (of {PHASES})")
    if not args.trickle_rate and "trickle" in phases:
        phases.remove("trickle")
    result: dict[str, Any] = {
        "benchmark": "knative",
        "events": args.events,
        "connections": args.connections,
        "partitions": args.partitions,
        "receiver": args.receiver,
        "idle_topics": args.idle_topics,
        "machine": machine(),
    }
    try:
        wait_until(lambda: _listening(port), 20, "bench receiver")
        bootstrap = broker.bootstrap_servers
        backlog, paced, trickled = (
            f"bench.knative.{name}.{os.getpid()}" for name in ("backlog", "paced", "trickle")
        )
        idle = [f"bench.knative.idle{n}.{os.getpid()}" for n in range(args.idle_topics)]
        ensure_topics(
            Settings(kafka={"bootstrapServers": bootstrap}).kafka,
            [
                TopicSpec(t, args.partitions, extra={"message.timestamp.type": "LogAppendTime"})
                for t in (backlog, paced, trickled, *idle)
            ]
            + [TopicSpec("bench.knative.dlq")],
        )
        if "sink" in phases:
            produce(bootstrap, backlog, records(args.events))
        if "bare" in phases:
            result["bare_client"] = measured("bare")
        if "aiohttp" in phases:
            result["aiohttp_client"] = measured("aiohttp")
        if "sink" in phases:
            result["sink"] = sink_result = measured("sink", bootstrap=bootstrap, topic=backlog)
            if "bare" in phases:
                bare_result = result["bare_client"]
                result["sink_to_bare_ratio"] = round(
                    sink_result["events_per_s"] / bare_result["events_per_s"], 3
                )
                result["sink_to_bare_cpu_ratio"] = round(
                    sink_result["events_per_cpu_s"] / bare_result["events_per_cpu_s"], 3
                )
        if "latency" in phases:
            result["latency"] = measured("latency", bootstrap=bootstrap, topic=paced)
            # the same rate from a bare client: the receiver's and the load's share
            result["latency_bare_client"] = measured("bare_latency")
        if "trickle" in phases:
            result["trickle"] = measure_trickle(measured, args, bootstrap, trickled, idle)
    finally:
        receiver.terminate()
        receiver.wait(10)
        broker.stop()
    result["load_average_1m"] = {"before": load_before, "after": os.getloadavg()[0]}
    return result


def measure_trickle(
    measured: Callable[..., dict[str, Any]],
    args: argparse.Namespace,
    bootstrap: str,
    topic: str,
    idle: list[str],
) -> dict[str, Any]:
    """The sink at a trickle, a bare consumer reading the same feed beside it, then the
    bare client paced alike; the sink as a ratio to the two together per CPU-second."""
    consumed: dict[str, Any] = {}

    def consume() -> None:
        consumed.update(run_child("bare_consume", args, bootstrap=bootstrap, topic=topic))

    beside = threading.Thread(target=consume)
    beside.start()
    extra = {"idle": ",".join(idle)} if idle else {}
    sink_result = measured("trickle", bootstrap=bootstrap, topic=topic, **extra)
    beside.join()
    client = measured("bare_paced")
    # a ceiling per event: what consuming and posting it alone cost, added up
    floor_us = 1e6 / consumed["events_per_cpu_s"] + 1e6 / client["events_per_cpu_s"]
    return {
        "sink": sink_result,
        "bare_consumer": consumed,
        "bare_client_paced": client,
        "ceiling_events_per_cpu_s": round(1e6 / floor_us, 1),
        "sink_to_ceiling_cpu_ratio": round(sink_result["events_per_cpu_s"] * floor_us / 1e6, 3),
    }


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


if __name__ == "__main__":
    main()
