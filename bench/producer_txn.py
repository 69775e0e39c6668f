"""The Kafka side of a quiet producer's cycle, bare: what a transaction costs librdkafka.

    .venv/bin/python -m bench.producer_txn [--rate 6.5] [--seconds 20] [--records 7]
        [--partitions 1] [--rounds 3] [--variant NAME:KEY=VALUE,KEY=VALUE ...]
        [--bootstrap HOST:PORT | --broker-property KEY=VALUE ...]

At 50 events/s the producer commits ~6.5 transactions a second, each ~7.5 events of one
vCenter (keyed by entity: one or a few partitions of the events topic) and its
checkpoint (a partition of the compacted checkpoints topic). This runs that loop on
confluent-kafka alone, with the writer's own configuration (producer.writer.
writer_config), so what it costs is the floor of the producer's Kafka side: begin,
`--records` records spread over `--partitions` partitions, the checkpoint, commit,
`--rate` times a second for `--seconds`.

Each `--variant` is the writer's configuration with some librdkafka properties changed
(`--variant nagle:socket.nagle.disable=true`), or one of two pseudo-properties:
`no.checkpoint=true` leaves the checkpoint out (what a transaction touching one partition
fewer would save), `via.writer=true` commits through TransactionalWriter (what its Python
adds). `writer` is always run. Every round runs each variant once, on a fresh producer,
in an order reversed every other round, so the machine's noise falls on all alike;
figures are the medians of the rounds. Per variant:
- CPU per transaction of the calling thread (`app`: the Python calls into
  confluent-kafka) and of librdkafka's threads, and their wake-ups (voluntary context
  switches), from /proc's per-thread schedstat;
- commit wall time (begin_transaction to commit_transaction's return) p50/p90:
  what the producer's pacer takes off its read interval.
Without --bootstrap it starts a private local broker (`--broker-property KEY=VALUE`
sets its server properties: `transaction.partition.verification.enable=false` shows what
Kafka's check of each partition new to a transaction, KIP-890, adds to the commit).
Prints one JSON object, with the 1-minute load average per round.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from bench.kafka_ceiling import HEADERS, sample_value
from bench.machine import machine
from bench.producer import ThreadMeter, percentile
from devenv import LocalKafka
from producer.writer import Outgoing, TransactionalWriter, writer_config
from schemas.record import KafkaRecord
from vcstream.kafka import TopicSpec, ensure_topics
from vcstream.settings.kafka import KafkaSettings

EVENTS_TOPIC = "bench.txn.events"
CHECKPOINTS_TOPIC = "bench.txn.checkpoints"
EVENTS_PARTITIONS = 6
# an event record of the producer's: ~0.9 KB of JSON data and the ce_* headers
EVENT_BYTES = 900
CHECKPOINT = b'{"key": 912345, "time": "2026-12-03T19:00:00.123456Z", "vcenter": "vc01"}'
WARM_UP_TRANSACTIONS = 10
RECORD_HEADERS = [(name, value) for name, value in HEADERS if isinstance(value, bytes)]
# `--variant bare:no.checkpoint=true`: transactions without the checkpoint's partition
NO_CHECKPOINT = "no.checkpoint"
# `--variant writer-class:via.writer=true`: through TransactionalWriter.commit
VIA_WRITER = "via.writer"


def parse_variant(text: str) -> tuple[str, dict[str, str | bool]]:
    """`name:key=value,key=value` -> (name, {key: value}); true/false as bools, which
    confluent-kafka's own properties (delivery.report.only.error) insist on."""
    name, _, properties = text.partition(":")
    overrides: dict[str, str | bool] = {}
    for item in filter(None, properties.split(",")):
        key, _, value = item.partition("=")
        overrides[key] = {"true": True, "false": False}.get(value, value)
    if not name or not overrides:
        raise argparse.ArgumentTypeError(f"expected NAME:KEY=VALUE[,KEY=VALUE], got {text!r}")
    return name, overrides


class Loop:
    """One variant's producer and the transactions it commits."""

    def __init__(
        self, bootstrap: str, name: str, overrides: dict[str, str | bool], args: Any
    ) -> None:
        config = writer_config(
            KafkaSettings(bootstrapServers=bootstrap), f"bench-txn-{name}-{os.getpid()}", 60
        )
        overrides = dict(overrides)  # the next round runs the same variant again
        # not a librdkafka property: the variant leaves the checkpoint out
        self.checkpoint = overrides.pop(NO_CHECKPOINT, None) is None
        self.writer: TransactionalWriter | None = None
        if overrides.pop(VIA_WRITER, None) is not None:
            kafka = KafkaSettings(bootstrapServers=bootstrap, clientProperties=overrides)
            self.writer = TransactionalWriter(
                kafka, config["transactional.id"], timedelta(seconds=60), name, threading.Event()
            )
            self.writer.start()
        config.update(overrides)
        config.pop("logger", None)  # nothing is logged at the default level
        self.producer = Producer(config) if self.writer is None else None
        if self.producer is not None:
            self.producer.init_transactions(60)
        self.records = args.records
        self.partitions = args.partitions
        self.value = sample_value(EVENT_BYTES)
        self.commit_ms: list[float] = []

    def transaction(self, index: int) -> None:
        if self.writer is not None:
            self._through_writer(index, self.writer)
            return
        producer = self.producer
        assert producer is not None
        began = time.perf_counter()
        producer.begin_transaction()
        for record in range(self.records):
            partition = (index + record) % self.partitions
            key = f"vc-uuid/VirtualMachine:vm-{partition}".encode()
            producer.produce(
                EVENTS_TOPIC, value=self.value, key=key, partition=partition, headers=HEADERS
            )
        if self.checkpoint:
            producer.produce(CHECKPOINTS_TOPIC, value=CHECKPOINT, key=b"vc-uuid")
        producer.commit_transaction(60)
        self.commit_ms.append((time.perf_counter() - began) * 1000)

    def _through_writer(self, index: int, writer: TransactionalWriter) -> None:
        records: list[Outgoing] = []
        for record in range(self.records):
            partition = (index + record) % self.partitions
            key = f"vc-uuid/VirtualMachine:vm-{partition}".encode()
            records.append((EVENTS_TOPIC, KafkaRecord(self.value, key, RECORD_HEADERS)))
        if self.checkpoint:
            records.append((CHECKPOINTS_TOPIC, KafkaRecord(CHECKPOINT, b"vc-uuid")))
        began = time.perf_counter()
        writer.commit(records)
        self.commit_ms.append((time.perf_counter() - began) * 1000)

    def run(self, rate: float, seconds: float) -> dict[str, Any]:
        for index in range(WARM_UP_TRANSACTIONS):
            self.transaction(index)
        self.commit_ms.clear()
        time.sleep(1)  # the warm-up's last deliveries and timers settle
        meter = ThreadMeter(os.getpid())
        count = max(1, round(rate * seconds))
        began = time.perf_counter()
        for index in range(count):
            self.transaction(index)
            time.sleep(max(0.0, began + (index + 1) / rate - time.perf_counter()))
        threads = meter.report(count * (self.records + self.checkpoint), count)
        return {
            "transactions": count,
            "transactions_per_s": round(count / (time.perf_counter() - began), 2),
            "commit_ms_p50": round(percentile(self.commit_ms, 0.5), 2),
            "commit_ms_p90": round(percentile(self.commit_ms, 0.9), 2),
            "app_cpu_ms_per_transaction": threads["python"]["cpu_ms_per_transaction"],
            "librdkafka_cpu_ms_per_transaction": threads["librdkafka"]["cpu_ms_per_transaction"],
            "app_wakeups_per_transaction": threads["python"]["wakeups_per_transaction"],
            "librdkafka_wakeups_per_transaction": threads["librdkafka"]["wakeups_per_transaction"],
            "librdkafka_threads": {
                name: figures["cpu_ms_per_transaction"]
                for name, figures in threads.items()
                if name.startswith("rdk:")
            },
        }

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.producer is not None:
            self.producer.flush(5)


def medians(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [key for key, value in rounds[0].items() if isinstance(value, int | float)]
    return {key: round(statistics.median(run[key] for run in rounds), 3) for key in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=6.5, help="transactions per second")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--records", type=int, default=7, help="event records per transaction")
    parser.add_argument(
        "--partitions", type=int, default=1, help="events partitions a transaction spreads over"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--variant", type=parse_variant, action="append", default=[], help="NAME:KEY=VALUE,..."
    )
    parser.add_argument("--bootstrap", help="an existing broker; default: start a local one")
    parser.add_argument(
        "--broker-property",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a server property of the private broker, repeatable",
    )
    args = parser.parse_args()
    if not 1 <= args.partitions <= EVENTS_PARTITIONS:
        parser.error(f"--partitions: 1 to {EVENTS_PARTITIONS}")
    variants: list[tuple[str, dict[str, str | bool]]] = [("writer", {}), *args.variant]

    broker = None
    bootstrap = args.bootstrap
    if bootstrap is None:
        broker = LocalKafka(
            Path(tempfile.mkdtemp(prefix="bench-txn-")),
            heap="1g",
            overrides=dict(pair.split("=", 1) for pair in args.broker_property),
        ).start()
        bootstrap = broker.bootstrap_servers
    try:
        ensure_topics(
            KafkaSettings(bootstrapServers=bootstrap),
            [
                TopicSpec(EVENTS_TOPIC, EVENTS_PARTITIONS),
                TopicSpec(CHECKPOINTS_TOPIC, 1, compacted=True),
            ],
        )
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in variants}
        loads = []
        for round_ in range(args.rounds):
            for name, overrides in variants if round_ % 2 == 0 else variants[::-1]:
                loop = Loop(bootstrap, name, overrides, args)
                try:
                    runs[name].append(loop.run(args.rate, args.seconds))
                finally:
                    loop.close()
                    del loop  # its threads end before the next variant's are measured
            loads.append(round(os.getloadavg()[0], 2))
        print(
            json.dumps(
                {
                    "benchmark": "producer_txn",
                    "rate": args.rate,
                    "records": args.records,
                    "partitions": args.partitions,
                    "broker_properties": args.broker_property,
                    "variants": {
                        name: {"overrides": overrides, "median": medians(runs[name])}
                        for name, overrides in variants
                    },
                    "rounds": runs,
                    "machine": {**machine(), "load_average_1m": loads},
                },
                indent=2,
            )
        )
    finally:
        if broker is not None:
            broker.stop()


if __name__ == "__main__":
    main()
