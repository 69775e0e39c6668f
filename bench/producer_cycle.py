"""What one quiet-producer cycle costs, part by part, in CPU milliseconds.

    .venv/bin/python -m bench.producer_cycle [--commits 100] [--reads 100]

At 50 events/s the producer runs ~10 cycles a second (producer.commitInterval): read a
page, encode it, commit it with its checkpoint. bench.producer gives the total; this
gives the parts, on a private Kafka broker and vcsim:

- read: ReadNextEvents of an empty page and of a 5-event page (the worker's thread CPU),
  and one doorbell ring (WaitForUpdatesEx as the collector reads it, one event);
- encode: one event's record, one checkpoint;
- commit: a 5-event + checkpoint transaction every 100 ms, through TransactionalWriter
  and through confluent-kafka directly (the floor): the calling thread's CPU and the
  process's (librdkafka's threads too, less the idle rate measured just before); the
  floor also without the checkpoint record, alternating, medians of three.

Prints one JSON object, with the 1-minute load average (CPU per call rises with it).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from bench.machine import machine
from devenv import LocalKafka, LocalVcsim
from devenv.activity import VcsimClient
from producer.collector import EventCollector
from producer.connection import connect
from producer.events import checkpoint_record, event_record
from producer.position import Position
from producer.writer import Outgoing, TransactionalWriter
from vcstream.kafka import TopicSpec, ensure_topics, producer_config
from vcstream.settings.kafka import KafkaSettings
from vcstream.settings.vcenter import VCenterSettings

PAGE_EVENTS = 5
INTERVAL_S = 0.1


def thread_ms(step: Callable[[], object], times: int) -> float:
    """The calling thread's CPU per call of `step`."""
    began = time.thread_time()
    for _ in range(times):
        step()
    return round((time.thread_time() - began) * 1000 / times, 3)


def paced_commits(commit: Callable[[], None], times: int) -> dict[str, float]:
    """`commit` every INTERVAL_S: the caller's and the process's CPU per commit."""
    for _ in range(5):
        commit()
    idle_began = time.process_time()
    time.sleep(2)
    idle_per_s = (time.process_time() - idle_began) / 2
    began, process, thread = time.perf_counter(), time.process_time(), time.thread_time()
    for index in range(times):
        commit()
        time.sleep(max(0.0, began + (index + 1) * INTERVAL_S - time.perf_counter()))
    elapsed = time.perf_counter() - began
    process_s = time.process_time() - process - idle_per_s * elapsed
    return {
        "caller_thread_cpu_ms": round((time.thread_time() - thread) * 1000 / times, 3),
        "process_cpu_ms": round(process_s * 1000 / times, 3),
        "idle_process_cpu_ms_per_s": round(idle_per_s * 1000, 3),
    }


def median_parts(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each figure's median over alternating runs (the machine is shared and noisy)."""
    return {key: sorted(run[key] for run in runs)[len(runs) // 2] for key in runs[0]}


def reads(sim: LocalVcsim, times: int) -> tuple[dict[str, float], list[Any], Any]:
    vcenter = VCenterSettings(
        name="cycle",
        url=sim.url,
        username=sim.username,
        password=sim.password,
        caFile=sim.ca_file,
    )
    session = connect(vcenter, 60)
    client = VcsimClient(sim)
    collector = EventCollector(session.content, datetime.now(UTC), 2.0, vcenter=vcenter.name)
    collector.read_page(100)
    result = {"read_empty_page_cpu_ms": thread_ms(lambda: collector.read_page(100), times)}
    events: list[Any] = []
    spent = 0.0
    for _ in range(times // 4):
        client.post_eventex(PAGE_EVENTS, "com.example.bench")
        began = time.thread_time()
        events += collector.read_page(100)
        spent += time.thread_time() - began
    result[f"read_{PAGE_EVENTS}_event_page_cpu_ms"] = round(spent * 1000 / (times // 4), 3)
    spent = 0.0
    rings = 10
    for _ in range(rings):
        collector.wait_for_change()  # whatever is queued since the last wait
        client.post_eventex(1, "com.example.bench")
        began = time.thread_time()
        collector.wait_for_change()
        spent += time.thread_time() - began
        collector.read_page(100)
    result["doorbell_ring_cpu_ms"] = round(spent * 1000 / rings, 3)
    identity = session.identity
    result["encode_event_cpu_ms"] = thread_ms(
        lambda: [event_record(event, identity) for event in events], 1
    )
    result["encode_event_cpu_ms"] = round(result["encode_event_cpu_ms"] / len(events), 4)
    position = Position(1, datetime.now(UTC))
    result["checkpoint_cpu_ms"] = thread_ms(
        lambda: checkpoint_record(identity, position, b"cycle"), times
    )
    collector.close()
    client.close()
    return result, events, session


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--commits", type=int, default=100)
    parser.add_argument("--reads", type=int, default=100)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-cycle-"))
    broker = LocalKafka(workdir / "kafka", heap="1g").start()
    sim = LocalVcsim(workdir / "vcsim").start()
    try:
        kafka = KafkaSettings(bootstrapServers=broker.bootstrap_servers)
        ensure_topics(kafka, [TopicSpec("events", 6), TopicSpec("checkpoints", compacted=True)])
        read_parts, events, session = reads(sim, args.reads)
        parts: dict[str, Any] = dict(read_parts)
        position = Position(1, datetime.now(UTC))
        records: list[Outgoing] = [
            ("events", event_record(event, session.identity)) for event in events[:PAGE_EVENTS]
        ]
        records.append(("checkpoints", checkpoint_record(session.identity, position, b"cycle")))
        session.close()
        writer = TransactionalWriter(
            kafka, "bench-cycle-writer", timedelta(seconds=60), "cycle", threading.Event()
        )
        writer.start()
        parts["commit_writer"] = paced_commits(lambda: writer.commit(records), args.commits)
        writer.close()
        raw = Producer(
            producer_config(
                kafka,
                **{
                    "transactional.id": "bench-cycle-raw",
                    "enable.idempotence": True,
                    "linger.ms": 5,
                },
            )
        )
        raw.init_transactions(60)

        def raw_commit(batch: list[Outgoing] = records) -> None:
            raw.begin_transaction()
            for topic, record in batch:
                raw.produce(topic, value=record.value, key=record.key, headers=list(record.headers))
            raw.commit_transaction(60)

        # the floor, alternating with and without the checkpoint record (its own
        # partition in every transaction): what writing it less often could save
        with_checkpoint, without = [], []
        for _ in range(3):
            with_checkpoint.append(paced_commits(raw_commit, args.commits))
            without.append(paced_commits(lambda: raw_commit(records[:-1]), args.commits))
        parts["commit_confluent_kafka_floor"] = median_parts(with_checkpoint)
        parts["commit_confluent_kafka_floor_without_checkpoint"] = median_parts(without)
        raw.flush(5)
        print(
            json.dumps(
                {
                    "benchmark": "producer_cycle",
                    "page_events": PAGE_EVENTS,
                    **parts,
                    "machine": machine(),
                },
                indent=2,
            )
        )
    finally:
        sim.stop()
        broker.stop()


if __name__ == "__main__":
    main()
