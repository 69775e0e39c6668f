"""The Knative sink against a bare keep-alive client of the same library, one receiver.

    .venv/bin/python -m bench.knative [--events 20000] [--rate 2000] [--seconds 10]
        [--receiver lean|aiohttp] [--batch N] [--buffered N]

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
  catches up in bursts above the rate).
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
from pathlib import Path
from typing import Any

import aiohttp
from confluent_kafka import Producer

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

WARM_UP_S = 2  # the latency phase's first seconds, also reported without
VCENTER = VCenterIdentity("5a1b1f6c-0c4d-4a8e-9b43-3e2f7c9d0a11", "https://vc01/sdk", "8.0.3.0")


def records(count: int, start: int = 0) -> list[KafkaRecord]:
    """VmPoweredOnEvents over 500 VMs (so 500 keys), about VEBA's size."""
    host = {"Name": "esx01", "Host": {"Type": "HostSystem", "Value": "host-19"}}
    message = "Virtual machine vm{vm} on esx01 in dc1 is powered on"
    return [powered_on(index, message, VCENTER, Host=host) for index in range(start, start + count)]


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


def sink_runner(bootstrap: str, url: str, topic: str, args: argparse.Namespace) -> SinkRunner:
    section = {
        "url": url,
        "concurrency": args.connections,
        "topics": [topic],
        "groupId": f"bench-knative-{topic}",
        "delivery": {"deadLetterTopic": "bench.knative.dlq"},
        # the sink's own batch settings unless given: the bench measures the default
        "batch": {"maxInFlight": args.partitions}
        | ({"maxRecords": args.batch} if args.batch else {})
        | ({"maxBuffered": args.buffered} if args.buffered else {}),
    }
    settings = Settings(kafka={"bootstrapServers": bootstrap}, sinks={"knative": section})
    return SinkRunner(
        registry.create_sink("knative", settings),
        settings.kafka,
        topics=[topic],
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


def _per_second(appended_ms: list[int]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for at in appended_ms:
        counts[at // 1000] = counts.get(at // 1000, 0) + 1
    return counts


def run_child(phase: str, args: argparse.Namespace, **extra: str) -> dict[str, Any]:
    argv = [sys.executable, "-m", "bench.knative", "--phase", phase, "--events", str(args.events),
            "--connections", str(args.connections), "--partitions", str(args.partitions),
            "--rate", str(args.rate), "--seconds", str(args.seconds),
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
    parser.add_argument("--receiver", choices=["lean", "aiohttp"], default="lean")
    parser.add_argument("--batch", type=int, help="the sink's batch.maxRecords (its default)")
    parser.add_argument("--buffered", type=int, help="the sink's batch.maxBuffered")
    parser.add_argument(
        "--phase", choices=["bare", "aiohttp", "sink", "latency", "produce", "receive"]
    )
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase == "receive":
        lean_receiver(args.port)
    elif args.phase == "produce":
        produce(args.bootstrap, args.topic, records(args.events, start=10**6), args.rate)
    elif args.phase in ("bare", "aiohttp"):
        result = asyncio.run(bare(args.url, args.events, args.connections, args.phase))
        print(json.dumps(result))
    elif args.phase == "sink":
        print(json.dumps(sink(args.bootstrap, args.url, args.topic, args)))
    elif args.phase == "latency":
        print(json.dumps(latency(args.bootstrap, args.url, args.topic, args)))
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

    try:
        wait_until(lambda: _listening(port), 20, "bench receiver")
        bootstrap = broker.bootstrap_servers
        backlog, paced = (f"bench.knative.{name}.{os.getpid()}" for name in ("backlog", "paced"))
        ensure_topics(
            Settings(kafka={"bootstrapServers": bootstrap}).kafka,
            [
                TopicSpec(t, args.partitions, extra={"message.timestamp.type": "LogAppendTime"})
                for t in (backlog, paced)
            ]
            + [TopicSpec("bench.knative.dlq")],
        )
        produce(bootstrap, backlog, records(args.events))
        bare_result = measured("bare")
        aiohttp_result = measured("aiohttp")
        sink_result = measured("sink", bootstrap=bootstrap, topic=backlog)
        latency_result = measured("latency", bootstrap=bootstrap, topic=paced)
    finally:
        receiver.terminate()
        receiver.wait(10)
        broker.stop()
    return {
        "benchmark": "knative",
        "events": args.events,
        "connections": args.connections,
        "partitions": args.partitions,
        "receiver": args.receiver,
        "machine": {"cpus": os.cpu_count()},
        "bare_client": bare_result,
        "aiohttp_client": aiohttp_result,
        "sink": sink_result,
        "sink_to_bare_ratio": round(sink_result["events_per_s"] / bare_result["events_per_s"], 3),
        "sink_to_bare_cpu_ratio": round(
            sink_result["events_per_cpu_s"] / bare_result["events_per_cpu_s"], 3
        ),
        "latency": latency_result,
        "load_average_1m": {"before": load_before, "after": os.getloadavg()[0]},
    }


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


if __name__ == "__main__":
    main()
