"""What the dashboard costs: a real Prometheus scraping a process that exports every
vcstream metric, and the time it takes to evaluate every Grafana panel query.

    .venv/bin/python -m bench.dashboard [--rounds 20]

Needs Debian's prometheus (deploy/local/install.sh). Prints one JSON object: start-up
and first-scrape times, /metrics size, and per-query latency over all dashboard queries.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from devenv.dashboard import dashboard_queries
from devenv.process import REPO, free_port, wait_until
from devenv.prometheus import LocalPrometheus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20, help="evaluations of each query")
    args = parser.parse_args()
    port = free_port()
    exporter = subprocess.Popen(
        [sys.executable, "-m", "tests.deploy.exercise_metrics", str(port)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert exporter.stdout is not None and exporter.stdout.readline().strip() == "serving"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as response:
            metrics_bytes = len(response.read())
        with tempfile.TemporaryDirectory() as workdir:
            began = time.monotonic()
            server = LocalPrometheus(Path(workdir), {"roles": [f"127.0.0.1:{port}"]}).start()
            started = time.monotonic() - began
            try:
                server.wait_scraped()
                first_scrape = time.monotonic() - began
                wait_until(
                    lambda: bool(server.query("count(vcstream_sink_delivered_total offset 1s)")),
                    30,
                    "a second scrape",
                )
                queries = dashboard_queries()
                latencies: list[float] = []
                empty = 0
                for _ in range(args.rounds):
                    for query in queries:
                        t0 = time.perf_counter()
                        empty += not server.query(query.promql)
                        latencies.append(time.perf_counter() - t0)
            finally:
                server.stop()
    finally:
        exporter.kill()
        exporter.wait()
    latencies.sort()
    print(
        json.dumps(
            {
                "bench": "dashboard",
                "queries": len(queries),
                "rounds": args.rounds,
                "metrics_bytes": metrics_bytes,
                "prometheus_start_s": round(started, 3),
                "first_scrape_s": round(first_scrape, 3),
                "query_p50_ms": round(statistics.median(latencies) * 1000, 2),
                "query_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
                "empty_results": empty,
            }
        )
    )


if __name__ == "__main__":
    main()
