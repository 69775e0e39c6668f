"""The gateway: ingest over keep-alive connections, and reads fanned out to many clients.

    .venv/bin/python -m bench.gateway [--events 20000] [--connections 8] [--batch 1]
                                      [--readers 1,50]

A private local broker and the gateway as users run it (`python -m vcstream gateway`,
its own process, so its CPU time and peak RSS are its own):
- ingest: `--connections` aiohttp keep-alive clients POST `--events` binary-mode events
  (`--batch` > 1: batched mode) to /webhook; events/s from the first request to the
  last answer, p50/p99 of a request's time to its 200 (Kafka acknowledged every event),
  and events per CPU-second of the gateway's process over the same span;
- readers: for each count in `--readers`, that many clients read the topic from offset 0
  to its end at once (`/api/v1/events`); events/s delivered in all.
Prints one JSON object, with the 1-minute load average before and after: on a shared
machine a high one means the figures are low bounds.
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
from pathlib import Path
from typing import Any

import aiohttp

from devenv import LocalKafka
from devenv.process import free_port, wait_until

REPO = Path(__file__).resolve().parents[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"VmHWM:\s+(\d+)", status)
    return int(found.group(1)) / 1024 if found else 0.0


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


async def ingest(url: str, events: int, connections: int, batch: int) -> dict[str, Any]:
    requests = [list(range(i, min(i + batch, events))) for i in range(0, events, batch)]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--readers", default="1,50")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        kafka = LocalKafka(Path(tmp) / "kafka").start()
        port = free_port()
        config = Path(tmp) / "gateway.yaml"
        config.write_text(
            f"kafka: {{bootstrapServers: '{kafka.bootstrap_servers}'}}\n"
            f"gateway: {{host: 127.0.0.1, port: {port}, topic: bench.webhook, partitions: 6,"
            f" watch: {{topic: bench.webhook, maxWatches: 100}}}}\n"
            "metrics: {enabled: false}\nlogging: {level: WARNING}\n"
        )
        gateway = subprocess.Popen(
            [sys.executable, "-m", "cli", "gateway", "--config", str(config)], cwd=REPO
        )
        base = f"http://127.0.0.1:{port}"
        try:

            def up() -> bool:
                try:
                    subprocess.run(
                        ["curl", "-sf", base + "/api/v1/range"], check=True, capture_output=True
                    )
                except subprocess.CalledProcessError:
                    return False
                return True

            wait_until(up, 60, "the gateway")
            cpu_before = cpu_seconds(gateway.pid)
            result = asyncio.run(
                ingest(base + "/webhook", args.events, args.connections, args.batch)
            )
            cpu = cpu_seconds(gateway.pid) - cpu_before
            result["events_per_cpu_s"] = round(args.events / cpu) if cpu else None
            reads = [
                asyncio.run(read_all(base + "/api/v1/events", int(n), args.events))
                for n in args.readers.split(",")
            ]
            report = {
                "events": args.events,
                "connections": args.connections,
                "batch": args.batch,
                "ingest": result,
                "reads": reads,
                "gateway_peak_rss_mb": round(peak_rss_mb(gateway.pid), 1),
                "load_average_before": round(load_before, 2),
                "load_average_after": round(os.getloadavg()[0], 2),
            }
        finally:
            gateway.terminate()
            gateway.wait(30)
            kafka.stop()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
