"""The gateway: ingest over keep-alive connections, reads, and live watches fanned out.

    .venv/bin/python -m bench.gateway [--events 20000] [--connections 8] [--batch 1]
                                      [--readers 1,50] [--watches 1,50]
                                      [--watch-events 5000] [--watch-format sse|ndjson]
                                      [--watch-batch 50] [--ceiling-records 100000]

A private local broker and the gateway as users run it (`python -m cli gateway`, its own
process, so its CPU time and peak RSS are its own). Phases, each with the gateway's CPU
seconds, events per CPU-second and the 1-minute load average at its end:
- ingest: `--connections` aiohttp keep-alive clients POST `--events` binary-mode events
  (`--batch` > 1: batched mode) to /webhook; events/s from the first request to the
  last answer, p50/p99 of a request's time to its 200 (Kafka acknowledged every event);
- reads: for each count in `--readers`, that many clients read the topic from offset 0
  to its end at once (`/api/v1/events`); events/s delivered in all;
- fan-out: for each count in `--watches`, that many watches (`watch=true&from=now`, SSE
  or NDJSON) are open before `--watch-events` events are posted as in the ingest phase
  but `--watch-batch` to a request (so the writers outpace the watches);
  events/s delivered to the watches in all and to each one, from the first POST to
  the last watch's last event, and how long the last watch lagged the last answer.
Ceilings, measured in the same run on the same broker (bench.kafka_ceiling's raw
confluent-kafka clients, `--ceiling-records` records of the same size): produce
(idempotent, acks=all) records/s for the ingest, one read_committed consumer's
records/s for reads and fan-out. Each figure is also given as
a ratio to its ceiling; a live watch's own ceiling is the rate events are written, so
`per_watch_to_ingest` is 1.0 when every watch keeps up with the writers.
Prints one JSON object. On a shared machine a high load average means the figures are
low bounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp

from bench.kafka_ceiling import consume, produce, sample_value
from devenv import LocalKafka
from devenv.process import free_port, wait_until
from vcstream.kafka import TopicSpec, ensure_topics
from vcstream.settings.kafka import KafkaSettings

REPO = Path(__file__).resolve().parents[1]
TOPIC = "bench.webhook"
PARTITIONS = 6


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int, field: str) -> float:
    """VmHWM (peak RSS) or VmRSS of the process, in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(rf"{field}:\s+(\d+)", status)
    return round(int(found.group(1)) / 1024, 1) if found else 0.0


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def event(index: int) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"bench-{index}",
        "source": "https://bench.example.com",
        "type": "com.example.bench.v1",
        "subject": f"vm-{index % 500}",
        "time": "2026-01-31T12:00:00Z",
        "datacontenttype": "application/json",
        "data": {"index": index, "message": "Virtual machine on esx01 in dc1 is powered on"},
    }


async def ingest(url: str, first: int, events: int, connections: int, batch: int) -> dict[str, Any]:
    """POST events `first`..`first + events - 1`; the rate and a request's time to 200."""
    requests = [
        list(range(i, min(i + batch, first + events))) for i in range(first, first + events, batch)
    ]
    latencies: list[float] = []
    queue: asyncio.Queue[list[int]] = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)

    async def client(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            indexes = queue.get_nowait()
            if batch == 1:
                item = event(indexes[0])
                data = json.dumps(item.pop("data")).encode()
                headers = {f"ce-{k}": v for k, v in item.items() if k != "datacontenttype"}
                headers["content-type"] = "application/json"
            else:
                data = json.dumps([event(i) for i in indexes]).encode()
                headers = {"content-type": "application/cloudevents-batch+json"}
            began = time.perf_counter()
            async with session.post(url, data=data, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{response.status}: {await response.text()}")
            latencies.append(time.perf_counter() - began)

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        began = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(connections)))
        elapsed = time.perf_counter() - began
    return {
        "events_per_s": round(events / elapsed),
        "seconds": round(elapsed, 2),
        "p50_ack_ms": round(percentile(latencies, 0.5) * 1000, 2),
        "p99_ack_ms": round(percentile(latencies, 0.99) * 1000, 2),
    }


async def read_all(url: str, readers: int, expected: int) -> dict[str, Any]:
    async def reader(session: aiohttp.ClientSession) -> int:
        lines = 0
        async with session.get(url) as response:
            async for _ in response.content:
                lines += 1
        return lines

    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(
        timeout=timeout, connector=aiohttp.TCPConnector(limit=readers)
    ) as session:
        began = time.perf_counter()
        counts = await asyncio.gather(*(reader(session) for _ in range(readers)))
        elapsed = time.perf_counter() - began
    if any(count != expected for count in counts):
        raise RuntimeError(f"readers got {sorted(set(counts))} events, expected {expected}")
    return {"readers": readers, "events_per_s": round(sum(counts) / elapsed)}


async def active_watches(session: aiohttp.ClientSession, metrics_url: str) -> float:
    async with session.get(metrics_url) as response:
        text = await response.text()
    found = re.search(r"^vcstream_gateway_active_watches (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def fan_out(
    base: str, metrics_url: str, watches: int, first: int, args: argparse.Namespace
) -> dict[str, Any]:
    """`watches` live watches from now while `args.watch_events` events are posted."""
    sse = args.watch_format == "sse"
    # one event: an NDJSON line, or an SSE message's data line (after its id line)
    marker = b"\ndata: " if sse else b"\n"
    headers = {"Accept": "text/event-stream"} if sse else {}
    target = args.watch_events
    counts = [0] * watches
    finished: list[float] = [0.0] * watches

    async def watch(session: aiohttp.ClientSession, index: int) -> None:
        url = base + "/api/v1/events?watch=true&from=now"
        async with session.get(url, headers=headers) as response:
            if response.status != 200:
                raise RuntimeError(f"watch {index}: {response.status} {await response.text()}")
            tail, keep = b"", len(marker) - 1
            async for chunk in response.content.iter_any():
                seen = tail + chunk
                counts[index] += seen.count(marker)
                tail = seen[max(0, len(seen) - keep) :]  # too short to hold a whole marker
                if counts[index] >= target:
                    finished[index] = time.perf_counter()
                    break
        if counts[index] != target:
            raise RuntimeError(f"watch {index} got {counts[index]} events, {target} written")

    timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
    async with aiohttp.ClientSession(
        timeout=timeout, connector=aiohttp.TCPConnector(limit=watches + 1)
    ) as session:
        tasks = [asyncio.create_task(watch(session, i)) for i in range(watches)]
        deadline = time.monotonic() + 120
        while await active_watches(session, metrics_url) < watches:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{watches} watches did not open in 120 s")
            await asyncio.sleep(0.2)
        began = time.perf_counter()
        written = await ingest(base + "/webhook", first, target, args.connections, args.watch_batch)
        written_at = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*tasks), 600)
    elapsed = max(finished) - began
    per_watch = sorted(target / (at - began) for at in finished)
    return {
        "watches": watches,
        "format": args.watch_format,
        "events_written": target,
        "ingest_events_per_s": written["events_per_s"],
        "ingest_p99_ack_ms": written["p99_ack_ms"],
        "delivered_events_per_s": round(watches * target / elapsed),
        "per_watch_events_per_s_min": round(per_watch[0]),
        "per_watch_events_per_s_median": round(per_watch[len(per_watch) // 2]),
        "per_watch_to_ingest": round(per_watch[0] / written["events_per_s"], 3),
        "last_watch_lag_s": round(max(finished) - written_at, 2),
    }


def measured(
    pid: int, events: int, run: Callable[[], Coroutine[Any, Any, dict[str, Any]]]
) -> dict[str, Any]:
    """A phase's figures with the gateway's CPU time over it, `events` the events it
    handled (written, or delivered in all)."""
    cpu_before = cpu_seconds(pid)
    result = asyncio.run(run())
    cpu = cpu_seconds(pid) - cpu_before
    result["gateway_cpu_s"] = round(cpu, 2)
    result["events_per_cpu_s"] = round(events / cpu) if cpu else None
    result["gateway_rss_mb"] = memory_mb(pid, "VmRSS")
    result["load_average_1m"] = round(os.getloadavg()[0], 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--readers", default="1,50")
    parser.add_argument("--watches", default="1,50")
    parser.add_argument("--watch-events", type=int, default=5000)
    parser.add_argument("--watch-format", choices=("sse", "ndjson"), default="sse")
    # batched posts, so the writers outpace the watches and the watches are measured
    parser.add_argument("--watch-batch", type=int, default=50)
    parser.add_argument("--ceiling-records", type=int, default=100_000)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    watch_counts = [int(n) for n in args.watches.split(",") if n]
    with tempfile.TemporaryDirectory() as tmp:
        kafka = LocalKafka(Path(tmp) / "kafka").start()
        port, metrics_port = free_port(), free_port()
        config = Path(tmp) / "gateway.yaml"
        config.write_text(
            f"kafka: {{bootstrapServers: '{kafka.bootstrap_servers}'}}\n"
            f"gateway: {{host: 127.0.0.1, port: {port}, topic: {TOPIC}, "
            f"partitions: {PARTITIONS}, watch: {{topic: {TOPIC}, "
            f"maxWatches: {max([100, *watch_counts])}}}}}\n"
            f"metrics: {{host: 127.0.0.1, port: {metrics_port}}}\nlogging: {{level: WARNING}}\n"
        )
        gateway = subprocess.Popen(
            [sys.executable, "-m", "cli", "gateway", "--config", str(config)], cwd=REPO
        )
        base = f"http://127.0.0.1:{port}"
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        try:

            def up() -> bool:
                done = subprocess.run(
                    ["curl", "-sf", base + "/api/v1/range"], check=False, capture_output=True
                )
                return done.returncode == 0

            wait_until(up, 60, "the gateway", alive=lambda: gateway.poll() is None)
            pid = gateway.pid
            result = measured(
                pid,
                args.events,
                partial(ingest, base + "/webhook", 0, args.events, args.connections, args.batch),
            )
            reads = []
            url = base + "/api/v1/events"
            for n in (int(n) for n in args.readers.split(",") if n):
                reads.append(measured(pid, n * args.events, partial(read_all, url, n, args.events)))
            fan = []
            first = args.events
            for n in watch_counts:
                fan.append(
                    measured(
                        pid,
                        n * args.watch_events,
                        partial(fan_out, base, metrics_url, n, first, args),
                    )
                )
                first += args.watch_events
            peak_rss = memory_mb(pid, "VmHWM")
        finally:
            gateway.terminate()
            gateway.wait(30)
        # the ceilings, on the same broker once the gateway is gone
        ceiling_topic = "bench.ceiling"
        ensure_topics(
            KafkaSettings(bootstrapServers=kafka.bootstrap_servers),
            [TopicSpec(ceiling_topic, partitions=PARTITIONS)],
        )
        value = sample_value(len(json.dumps(event(0)["data"])))
        produced = produce(kafka.bootstrap_servers, ceiling_topic, args.ceiling_records, value)
        read = consume(kafka.bootstrap_servers, ceiling_topic, PARTITIONS, args.ceiling_records)
        kafka.stop()
    result["to_ceiling"] = round(result["events_per_s"] / produced["records_per_s"], 3)
    for phase, delivered in [
        *((r, r["events_per_s"]) for r in reads),
        *((f, f["delivered_events_per_s"]) for f in fan),
    ]:
        phase["to_read_ceiling"] = round(delivered / read["records_per_s"], 3)
    report = {
        "benchmark": "gateway",
        "events": args.events,
        "connections": args.connections,
        "batch": args.batch,
        "ingest": result,
        "reads": reads,
        "fan_out": fan,
        "ceilings": {
            "kafka_produce_records_per_s": round(produced["records_per_s"]),
            "kafka_consume_records_per_s": round(read["records_per_s"]),
        },
        "gateway_peak_rss_mb": peak_rss,
        "load_average_before": round(load_before, 2),
        "load_average_after": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
