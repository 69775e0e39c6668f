"""The audit sink's throughput beside its libraries' ceiling, in ONE run on one
pre-loaded topic (VEBA-shaped records, distinct keys over several partitions):

- `consume`: a bare confluent-kafka consume loop (the ceiling for any Python stage);
- `ceiling`: that loop plus a bare fastavro writer (`--codec`) of the same records as
  Avro (topic, partition, offset, timestamp, key, headers, value), one file per
  partition, fsynced: what writing the records with the library costs (the sink
  encodes its Avro itself, `sinks.audit.encoding`, so it may pass this);
- `encoder`: the fastest bare loop that writes the sink's own bytes: that consume loop,
  the sink's check of each record (`LayoutCheck`), its encoder (`AuditEncoder`), and
  its store's chain and file path (`AuditFiles.append_heads`, fsynced and sealed at
  the end); no event loop, no batches, no commits (the honest ceiling:
  `ratio_to_encoder`);
- `sink`: `vcstream sink audit` itself (files backend), as `SinkRunner` runs it:
  consume, check, build the record, chain, write, rotate, commit; it stops once every
  record is delivered and its files are closed and committed.

    .venv/bin/python -m bench.audit [--records 200000] [--partitions 6]
        [--stages consume,ceiling,encoder,sink] [--codec snappy|deflate] [--batch N]
        [--buffered N] [--rotate-records N]
        [--bootstrap HOST:PORT]

Each stage but `consume` runs as a child process, so its figures are its own, in parts:

- `startup`: from the child's start to its first record stored (interpreter, imports,
  consumer, group join, first fetch), seconds and CPU seconds;
- `running`: from its first record stored to its last, the records stored in between
  over that time and over the CPU the process spent meanwhile (librdkafka's threads
  included): a sink runs for days, so this is its throughput, the figure the audit
  sink's target (30,000 events/s) is judged on; its start-up is a figure of its own;
- `end`: from its last record stored to its exit (files closed, offsets committed);
- the whole run (`records_per_s`, `events_per_cpu_second`, `wall_seconds`): all three.

Beside them: the peak RSS of each process, and the 1-minute load average as the stage
began and as it ended (2 shared cores: a wall rate is a low bound when the load is
high; events per CPU-second much less so). `ratio_to_ceiling` is the whole-run rate over
the `ceiling` stage's (`cpu_ratio_to_ceiling` per CPU-second), `ratio_to_encoder` and
`cpu_ratio_to_encoder` the same over the `encoder` stage's, `running_ratio_to_encoder`
and `running_cpu_ratio_to_encoder` the running parts of the two, and
`cpu_ratio_to_consume` the events per CPU-second over the bare consume's.

`--rotate-records N` closes (fsyncs, renames, seals) each partition's file every N
records within the run, as a sink does every `files.rotateRecords` in the long run (at
the default, 100,000, 200,000 records over 6 partitions close their files only at the
end). Before the stages, one group commit creates the broker's offsets topic, so no
stage's start-up includes a fresh broker's (`coordinator_seconds`). Prints one JSON
object.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import IO, Any

from bench.machine import machine

TARGET_RECORDS_PER_S = 30_000  # the audit sink's, running (issue 14)

CEILING_SCHEMA = {
    "type": "record",
    "name": "Bare",
    "fields": [
        {"name": "topic", "type": "string"},
        {"name": "partition", "type": "int"},
        {"name": "offset", "type": "long"},
        {"name": "timestamp", "type": ["null", "long"]},
        {"name": "key", "type": ["null", "bytes"]},
        {
            "name": "headers",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "H",
                    "fields": [
                        {"name": "name", "type": "string"},
                        {"name": "value", "type": "bytes"},
                    ],
                },
            },
        },
        {"name": "value", "type": ["null", "bytes"]},
    ],
}


class Stamps:
    """When a child stored its first and its last records (epoch seconds: the parent's
    clock) and its CPU seconds then; printed as JSON for the parent."""

    def __init__(self) -> None:
        self.first: tuple[float, float, int] | None = None  # (time, CPU, stored by then)
        self.last: tuple[float, float] | None = None

    def stored(self, count: int) -> None:
        """`count` records stored so far (called after each write)."""
        now, cpu = time.time(), time.process_time()
        if self.first is None:
            self.first = (now, cpu, count)
        self.last = (now, cpu)

    def print(self, **extra: Any) -> None:
        print(json.dumps({"first": self.first, "last": self.last, **extra}))


def _consumer(args: argparse.Namespace, name: str) -> Any:
    """A bare stage's consumer, assigned every partition from its start."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": f"{name}-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "fetch.queue.backoff.ms": 10,
        }
    )
    consumer.assign([TopicPartition(args.topic, p, 0) for p in range(args.partitions)])
    return consumer


def _bare_loop(args: argparse.Namespace, name: str) -> tuple[Any, list[IO[bytes]]]:
    """A bare stage's consumer and one file per partition to write."""
    consumer = _consumer(args, name)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    return consumer, [(out / f"{p}.avro").open("wb") for p in range(args.partitions)]


def _close(consumer: Any, writers: list[Any], streams: list[IO[bytes]]) -> None:
    """Write out what each writer holds, make the files durable, close the consumer."""
    for writer, stream in zip(writers, streams, strict=True):
        writer.flush()
        stream.flush()
        os.fsync(stream.fileno())
        stream.close()
    consumer.close()


def ceiling_main(args: argparse.Namespace) -> None:
    """Consume every record and write it with fastavro, nothing else."""
    import fastavro
    import fastavro.write

    consumer, streams = _bare_loop(args, "ceiling")
    schema = fastavro.parse_schema(CEILING_SCHEMA)
    writers = [fastavro.write.Writer(s, schema, codec=args.codec) for s in streams]
    stamps = Stamps()
    seen = 0
    while seen < args.records:
        messages = consumer.consume(5000, timeout=1.0)
        for message in messages:
            if message.error():
                continue
            seen += 1
            partition = message.partition() or 0
            writers[partition].write(
                {
                    "topic": message.topic(),
                    "partition": message.partition(),
                    "offset": message.offset(),
                    "timestamp": message.timestamp()[1],
                    "key": message.key(),
                    "headers": [{"name": h[0], "value": h[1]} for h in message.headers() or []],
                    "value": message.value(),
                }
            )
        if messages:
            stamps.stored(seen)  # (fastavro's writers hold them until a block is full)
    _close(consumer, writers, streams)
    stamps.print()


def encoder_main(args: argparse.Namespace) -> None:
    """Consume every record and write the sink's bytes with its own code, nothing else."""
    from datetime import UTC, datetime

    from schemas.cloudevent import CloudEventView, LayoutCheck
    from schemas.record import ConsumedRecord
    from sinks.audit.files import AuditFiles
    from sinks.audit.record import AuditEncoder, Head, batch_tail
    from sinks.audit.sink import AuditSink
    from sinks.audit.store import EMPTY
    from sinks.runtime import GC_YOUNG_THRESHOLD

    consumer = _consumer(args, "encoder")
    rotation = {"rotate_records": args.rotate} if args.rotate else {}
    store = AuditFiles(Path(args.out), codec=args.codec, **rotation)
    prev = [EMPTY] * args.partitions
    check, encoder = LayoutCheck().check, AuditEncoder()
    gc.freeze()  # the collector as the sink runtime sets it for the audit sink
    gc.set_threshold(AuditSink.gc_young_threshold or GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    stamps = Stamps()
    seen = 0
    while seen < args.records:
        tail = batch_tail(datetime.now(UTC))
        heads: list[list[Head]] = [[] for _ in range(args.partitions)]
        for message in consumer.consume(5000, timeout=1.0):
            if message.error():
                continue
            seen += 1
            view = CloudEventView(ConsumedRecord(message))
            layout = check(view)
            assert layout is not None, "bench records share few layouts"
            parts = encoder.parts(layout, message.headers(), view.attributes)
            heads[message.partition() or 0].append(
                encoder.encode(message, parts, view.time(), view.data(), tail)
            )
        for partition, pending in enumerate(heads):
            if pending:
                prev[partition] = store.append_heads(
                    args.topic, partition, pending, prev[partition]
                )
        if any(heads):
            stamps.stored(seen)
    store.rotate_blocking()
    consumer.close()
    stamps.print()


def sink_main(args: argparse.Namespace) -> None:
    """The audit sink over the topic until every record is delivered and committed."""
    from sinks import registry
    from sinks.runtime import SinkRunner
    from vcstream.settings import Settings

    files: dict[str, Any] = {"directory": args.out, "codec": args.codec}
    if args.rotate:
        files["rotateRecords"] = args.rotate
    settings = Settings(
        kafka={"bootstrapServers": args.bootstrap},
        sinks={
            "audit": {
                "topics": [args.topic],
                "groupId": f"bench-audit-{uuid.uuid4().hex[:8]}",
                "files": files,
                "delivery": {"deadLetterTopic": f"{args.topic}.dlq"},
                "batch": {"maxInFlight": args.partitions}
                | ({"maxRecords": args.batch} if args.batch else {})
                | ({"maxBuffered": args.buffered} if args.buffered else {}),
            }
        },
        metrics={"enabled": False},
    )
    sink = registry.create_sink("audit", settings)
    runner = SinkRunner(
        sink,
        settings.kafka,
        topics=[args.topic],
        group_id=registry.group_id("audit", settings),
        dead_letter_topic=f"{args.topic}.dlq",
    )
    stamps = Stamps()
    deliver = sink.deliver

    async def stored(batch: Any) -> Any:
        """The sink's own `deliver`, stamped as it returns: the batch is in its files."""
        outcomes = await deliver(batch)
        stamps.stored(runner.report.delivered + len(batch))
        return outcomes

    sink.deliver = stored  # type: ignore[method-assign]

    async def run() -> None:
        stop = asyncio.Event()

        async def watch() -> None:
            while runner.report.delivered < args.records:
                await asyncio.sleep(0.05)
            stop.set()  # shutdown closes the open files and commits them

        watcher = asyncio.create_task(watch())
        await runner.run(stop)
        await watcher

    asyncio.run(run())
    if runner.report.delivered != args.records or runner.report.dead_lettered:
        raise SystemExit(f"sink delivered {runner.report}, expected {args.records}")
    # what the sink ran with: its own defaults but the keys the bench set
    stamps.print(batch=settings.sinks.audit.batch.model_dump(by_alias=True, mode="json"))


def stage(name: str, args: argparse.Namespace, bootstrap: str, topic: str, out: Path) -> Any:
    from bench.processes import run_measured
    from bench.replay import _figures

    command = [
        sys.executable, "-m", "bench.audit", f"--{name}-child", "--bootstrap", bootstrap,
        "--topic", topic, "--partitions", str(args.partitions), "--records", str(args.records),
        "--out", str(out), "--codec", args.codec,
        *(["--batch", str(args.batch)] if args.batch else []),
        *(["--buffered", str(args.buffered)] if args.buffered else []),
        *(["--rotate-records", str(args.rotate)] if args.rotate else []),
    ]  # fmt: skip
    report = out.with_suffix(".json")
    load_at_start = os.getloadavg()[0]
    with report.open("wb") as stream:
        spawned = time.time()
        measured = run_measured(command, stdout=stream)
    figures = json.loads(report.read_text())
    ended = spawned + measured.wall_seconds
    parts = _parts(figures, args.records, spawned, ended, measured.cpu_seconds)
    if "batch" in figures:
        parts["batch"] = figures["batch"]
    return _figures(name, measured, args.records, **parts) | {
        "load_average_1m_at_start": round(load_at_start, 2)
    }


def _parts(
    figures: dict[str, Any], records: int, spawned: float, ended: float, cpu: float
) -> dict[str, Any]:
    """A child's start-up (to its first record stored), its run (first to last record
    stored: the records stored after the first write, over that time and that CPU) and
    its end (last record stored to exit), from its `Stamps`."""
    first_at, first_cpu, first_count = figures["first"]
    last_at, last_cpu = figures["last"]
    seconds, cpu_seconds = last_at - first_at, last_cpu - first_cpu
    count = records - first_count
    return {
        "startup": {"seconds": round(first_at - spawned, 3), "cpu_seconds": round(first_cpu, 2)},
        "running": {
            "records": count,
            "seconds": round(seconds, 3),
            "cpu_seconds": round(cpu_seconds, 2),
            "records_per_s": round(count / seconds) if seconds > 0 else None,
            "events_per_cpu_second": round(count / cpu_seconds) if cpu_seconds > 0 else None,
        },
        "end": {"seconds": round(ended - last_at, 3), "cpu_seconds": round(cpu - last_cpu, 2)},
    }


def _ratio(part: float | None, whole: float | None) -> float | None:
    return round(part / whole, 3) if part and whole else None


def _ratios(runs: list[dict[str, Any]]) -> None:
    """Each stage against the ceilings measured in the same run."""
    ceiling = next((r for r in runs if r["stage"] == "ceiling"), None)
    encoder = next((r for r in runs if r["stage"] == "encoder"), None)
    consume = next((r for r in runs if r["stage"] == "confluent_kafka_consume"), None)
    for run in runs:
        if ceiling is not None:
            run["ratio_to_ceiling"] = _ratio(run["records_per_s"], ceiling["records_per_s"])
            run["cpu_ratio_to_ceiling"] = _ratio(
                run["events_per_cpu_second"], ceiling["events_per_cpu_second"]
            )
        if encoder is not None:  # the bare loop writing the sink's own bytes
            run["ratio_to_encoder"] = _ratio(run["records_per_s"], encoder["records_per_s"])
            run["cpu_ratio_to_encoder"] = _ratio(
                run["events_per_cpu_second"], encoder["events_per_cpu_second"]
            )
            if "running" in run:
                mine, theirs = run["running"], encoder["running"]
                run["running_ratio_to_encoder"] = _ratio(
                    mine["records_per_s"], theirs["records_per_s"]
                )
                run["running_cpu_ratio_to_encoder"] = _ratio(
                    mine["events_per_cpu_second"], theirs["events_per_cpu_second"]
                )
        if consume is not None:  # the bare consume: what any Python stage pays at least
            run["cpu_ratio_to_consume"] = _ratio(
                run["events_per_cpu_second"], consume["events_per_cpu_second"]
            )


def _warm_coordinator(bootstrap: str, topic: str) -> float:
    """One group commit, so the broker has its offsets topic before any stage runs (a
    fresh broker creates it at the first group's first request); its seconds."""
    from confluent_kafka import Consumer, TopicPartition

    began = time.perf_counter()
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"warm-{uuid.uuid4()}"})
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
    finally:
        consumer.close()
    return round(time.perf_counter() - began, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--stages", default="consume,ceiling,sink")
    parser.add_argument("--codec", default="snappy", help="Avro codec of sink and ceiling")
    parser.add_argument("--batch", type=int, help="the sink's batch.maxRecords (its default)")
    parser.add_argument("--buffered", type=int, help="the sink's batch.maxBuffered (its default)")
    parser.add_argument(
        "--rotate-records",
        dest="rotate",
        type=int,
        help="files.rotateRecords of the sink and the encoder (the sink's default)",
    )
    parser.add_argument("--bootstrap", help="an existing broker; default: start a local one")
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--ceiling-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sink-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--encoder-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ceiling_child:
        ceiling_main(args)
        return
    if args.sink_child:
        sink_main(args)
        return
    if args.encoder_child:
        encoder_main(args)
        return

    # the parent's imports: a child imports only what its stage runs, so its CPU time
    # is the stage's (these were ~3% of each child's)
    from bench.replay import bare_consume, preload
    from devenv import LocalKafka
    from vcstream.kafka import TopicSpec, ensure_topics
    from vcstream.settings.kafka import KafkaSettings

    workdir = Path(tempfile.mkdtemp(prefix="bench-audit-"))
    broker = None
    bootstrap = args.bootstrap
    if bootstrap is None:
        broker = LocalKafka(workdir / "kafka", heap="1g").start()
        bootstrap = broker.bootstrap_servers
    try:
        topic = f"bench.audit.{uuid.uuid4().hex[:8]}"
        ensure_topics(
            KafkaSettings(bootstrapServers=bootstrap),
            [TopicSpec(topic, partitions=args.partitions), TopicSpec(f"{topic}.dlq")],
        )
        result: dict[str, Any] = {
            "benchmark": "audit",
            "records": args.records,
            "partitions": args.partitions,
            "codec": args.codec,
            "sink_batch_max_records": args.batch,
            "rotate_records": args.rotate,
            "preload": preload(bootstrap, topic, args.records),
            "coordinator_seconds": _warm_coordinator(bootstrap, topic),
            "load_average_1m_at_start": round(os.getloadavg()[0], 2),
        }
        runs: list[dict[str, Any]] = []
        for name in args.stages.split(","):
            if name == "consume":
                runs.append(bare_consume(bootstrap, topic, args.partitions, args.records))
            else:
                runs.append(stage(name, args, bootstrap, topic, workdir / name))
        _ratios(runs)
        sink = next((r for r in runs if r["stage"] == "sink"), None)
        if sink is not None:  # judged on the running rate: see the module's docstring
            rate = sink["running"]["records_per_s"]
            result["target"] = {
                "figure": "stages[sink].running.records_per_s",
                "records_per_s": TARGET_RECORDS_PER_S,
                "met": bool(rate and rate >= TARGET_RECORDS_PER_S),
            }
        result["stages"] = runs
        result["machine"] = machine()
        print(json.dumps(result, indent=2))
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
