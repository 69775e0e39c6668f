"""Stream processors beside their ceilings, in one run on one broker: the worker
(enrichment, routing and the example processor), a bare Faust agent and a bare
confluent-kafka loop (bench.streams_bare), each forwarding the same pre-loaded topic.

    .venv/bin/python -m bench.streams [--events 200000] [--trickle 1000]
                                      [--bootstrap HOST:PORT] [--stateful] [--profile FILE]
                                      [--no-example] [--paced EVENTS_PER_S]

The input has 6 partitions and keys per VM (500 distinct): a quarter alarm status
changes (joined with one of 50 definitions, routed to alarms and audit), the rest VM
events (routed to audit, and by the example processor to vm-power). Each contender is
timed from its first output record to its last (start-up and group join left out
alike): events/s, events per CPU-second (on a shared machine the steadier figure), peak
RSS, the 1-minute load average, and the worker's ratio to each ceiling. The worker's
added latency is measured afterwards on a trickle at a steady rate: the audit record's
broker timestamp minus its input's. `--stateful` switches on the three built-in
stateful processors (a table write per event, the cost of state); `--profile` runs
py-spy on the worker over its throughput phase (and on each ceiling, into FILE's name
with `-faust` or `-confluent` added); `--no-example` leaves the example
processor out (three quarters of the events are then routed on their headers alone, as
the bytes they came as). `--paced R` writes each contender's input at R events/s while
it runs instead of pre-loading it: all are then measured at the same throughput, so
their CPU per event compares their work at equal batch sizes (drained at full speed, a
contender the busy machine starves forwards smaller batches and pays more per event).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Consumer, Producer, TopicPartition

from bench.kafka_ceiling import consume as ceiling_consume
from devenv import LocalKafka
from devenv.process import REPO, free_port
from schemas import VCenterIdentity, avro
from schemas.codec import encode_vsphere
from vcstream.kafka import client_config
from vcstream.settings import Settings, load_settings

VC = VCenterIdentity("b0b0b0b0-0000-4000-8000-000000000001", "https://vc.bench/sdk", "8.0.3.0")
ALARMS = 50
PARTITIONS = 6


def event(key: int) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    vm = {"Name": f"vm{key % 500}", "Vm": {"Type": "VirtualMachine", "Value": f"vm-{key % 500}"}}
    body: dict[str, Any] = {
        "Key": key,
        "ChainId": key,
        "CreatedTime": "2026-11-22T20:41:57.891Z",
        "UserName": "VSPHERE.LOCAL\\Administrator",
        "Vm": vm,
        "FullFormattedMessage": "x" * 400,
    }
    if key % 4 == 0:
        alarm = f"alarm-{key % ALARMS}"
        body |= {"Alarm": {"Name": alarm, "Alarm": {"Type": "Alarm", "Value": alarm}}}
        body |= {"From": "green", "To": "red" if key % 8 == 0 else "green"}
        record = encode_vsphere(body, "AlarmStatusChangedEvent", VC)
    else:
        record = encode_vsphere(body, "VmPoweredOnEvent", VC)
    return record.value, record.key, record.headers


def definitions() -> list[tuple[bytes, bytes]]:
    out = []
    for index in range(ALARMS):
        alarm = f"alarm-{index}"
        info = {"Name": alarm, "Key": alarm, "Alarm": {"Type": "Alarm", "Value": alarm}}
        value = avro.encode(
            "alarm_definition",
            {
                "vcenterUuid": VC.instance_uuid,
                "source": VC.source,
                "alarm": alarm,
                "name": alarm,
                "systemName": None,
                "description": "bench",
                "enabled": True,
                "entityType": "Folder",
                "entityValue": "group-d1",
                "lastModifiedTime": 0,
                "lastModifiedUser": None,
                "expressionSummary": [],
                "alarmInfo": json.dumps(info),
            },
        )
        out.append((f"{VC.instance_uuid}/{alarm}".encode(), value))
    return out


def produce(settings: Settings, topic: str, first: int, count: int, rate: float = 0) -> None:
    producer = Producer(client_config(settings.kafka, **{"linger.ms": 5}))
    start = time.monotonic()
    for index, key in enumerate(range(first, first + count)):
        value, record_key, headers = event(key)
        producer.produce(topic, value=value, key=record_key, headers=list(headers))
        producer.poll(0)
        if rate:
            delay = start + index / rate - time.monotonic()
            if delay > 0:
                producer.flush(1)
                time.sleep(delay)
    producer.flush(60)


def timestamps_by_id(settings: Settings, topic: str, count: int) -> dict[str, int]:
    consumer = Consumer(
        client_config(
            settings.kafka,
            **{"group.id": f"bench-{uuid.uuid4().hex}", "auto.offset.reset": "earliest"},
        )
    )
    consumer.subscribe([topic])
    found: dict[str, int] = {}
    deadline = time.monotonic() + 60
    try:
        while len(found) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            ce_id = dict(message.headers() or []).get("ce_id") or b""
            ce_id = ce_id.decode() if isinstance(ce_id, bytes) else ce_id
            found[ce_id] = message.timestamp()[1]
    finally:
        consumer.close()
    return found


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (all its threads)."""
    return _cpu_of(Path(f"/proc/{pid}/stat"))


def _cpu_of(stat: Path) -> float:
    # fields after the command name, which is in parentheses and may hold spaces
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_by_thread(pid: int) -> dict[str, float]:
    """CPU seconds so far per thread name (threads of one name summed; the main thread,
    which runs the event loop, as `main`): which thread of a process spends it (Python's
    threads are all named `python`, librdkafka's `rdk:...`)."""
    found: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = "main" if task.name == str(pid) else (task / "comm").read_text().strip()
            found[name] = found.get(name, 0.0) + _cpu_of(task / "stat")
        except OSError:
            continue  # a thread that ended meanwhile
    return found


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


STATEFUL = {
    "duplicates": {"enabled": True},
    "maintenance": {"enabled": True},
    "alarmStorm": {"enabled": True},
}


def run(
    bootstrap: str,
    workdir: Path,
    events: int,
    trickle: int,
    stateful: bool = False,
    example: bool = True,
    profile: Path | None = None,
    ceilings_too: bool = True,
    paced: float = 0,
) -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:8]
    port = free_port()
    config = {
        "kafka": {"bootstrapServers": bootstrap},
        "topics": {
            name: f"bench.{name}.{suffix}"
            for name in ("events", "checkpoints", "alarmDefinitions", "alarms", "audit")
        }
        | {"deadLetter": f"bench.dlq.{suffix}"},
        "producer": {"rawTopic": {"partitions": PARTITIONS}},
        "streams": {"appId": f"bench-{suffix}", "dataDir": str(workdir / "data")}
        | (STATEFUL if stateful else {})
        | ({} if example else {"processors": {"disabled": ["vm_power"]}}),
        "metrics": {"host": "127.0.0.1", "port": port},
        "logging": {"level": "WARNING"},
    }
    path = workdir / "bench.yaml"
    path.write_text(yaml.safe_dump(config))
    settings = load_settings(path)
    topics = settings.topics
    from streams.topics import prepare_topics

    bare = {kind: f"bench.bare-{kind}.{suffix}" for kind in ("faust", "confluent")}
    # paced: each contender reads a topic of its own, written at the rate as it runs
    inputs_of = {kind: f"bench.in-{kind}.{suffix}" if paced else topics.events for kind in bare}
    prepare_topics(settings, ["vcenter.vm-power", *bare.values(), *inputs_of.values()])
    producer = Producer(client_config(settings.kafka))
    for key, value in definitions():
        producer.produce(topics.alarm_definitions, value=value, key=key)
    producer.flush(30)
    produce(settings, topics.events, 1, 1 if paced else events)
    ceiling = None if paced else ceiling_consume(bootstrap, topics.events, PARTITIONS, events)
    counter = Watermarks(settings)

    command = [sys.executable, "-m", "cli", "streams", "worker", "--config", str(path)]
    worker = start(command, workdir / "worker.log")
    try:
        while not healthy(port):
            if worker.poll() is not None:
                raise RuntimeError((workdir / "worker.log").read_text()[-3000:])
            time.sleep(0.1)
        feeder = feed(settings, topics.events, paced, events, counter, topics.audit, worker)
        measured = measure(worker, counter, topics.audit, events, profile)
        if feeder is not None:
            feeder.join()

        first = events + 1
        produce(settings, topics.events, first, trickle, rate=500)
        inputs = timestamps_by_id(settings, topics.events, events + trickle)
        outputs = timestamps_by_id(settings, topics.audit, events + trickle)
        trickle_ids = [
            encode_vsphere_id(key) for key in range(first, first + trickle) if key % 4 != 0
        ]
        latencies = sorted(
            (outputs[i] - inputs[i]) / 1000 for i in trickle_ids if i in outputs and i in inputs
        )
        measured["peak_rss_mb"] = round(peak_rss_mb(worker.pid), 1)
    finally:
        stopped = stop(worker)
    measured["stopped_within_30s_of_sigterm"] = stopped

    ceilings: dict[str, dict[str, Any]] = {}
    for kind, output in bare.items() if ceilings_too else ():
        command = [sys.executable, "-m", "bench.streams_bare", kind, "--bootstrap", bootstrap]
        command += ["--input", inputs_of[kind], "--output", output, "--group", f"{kind}-{suffix}"]
        command += ["--compression", settings.kafka.compression]
        command += ["--datadir", str(workdir / f"data-{kind}")]
        if paced:
            produce(settings, inputs_of[kind], 1, 1)
        process = start(command, workdir / f"{kind}.log")
        try:
            feeder = feed(settings, inputs_of[kind], paced, events, counter, output, process)
            spied = profile.with_stem(f"{profile.stem}-{kind}") if profile else None
            expected = events if paced else events + trickle
            ceilings[kind] = measure(process, counter, output, expected, spied)
            if feeder is not None:
                feeder.join()
            ceilings[kind]["peak_rss_mb"] = round(peak_rss_mb(process.pid), 1)
        finally:
            stop(process)
    counter.close()
    if ceiling is None:  # paced: the events topic is complete only now
        ceiling = ceiling_consume(bootstrap, topics.events, PARTITIONS, events)
    rate = measured["events_per_s"]
    return {
        "benchmark": "streams",
        "events": events,
        "partitions": PARTITIONS,
        "distinct_keys": len({event(key)[1] for key in range(1, events + 1)}),
        "alarm_share": 0.25,
        "stateful": stateful,
        "example_processor": example,
        "paced_input_per_s": paced or None,
        "worker": measured,
        "added_latency_ms": {
            "samples": len(latencies),
            "p50": round(latencies[len(latencies) // 2] * 1000, 1) if latencies else None,
            "p99": round(latencies[int(len(latencies) * 0.99)] * 1000, 1) if latencies else None,
            "trickle_rate_per_s": 500,
        },
        **_ratios(measured, ceilings),
        "kafka_ceiling_consume_per_s": round(ceiling["records_per_s"]),
        "ratio_to_ceiling": round(rate / ceiling["records_per_s"], 4),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }


def feed(
    settings: Settings,
    topic: str,
    rate: float,
    events: int,
    counter: Watermarks,
    output: str,
    process: subprocess.Popen[bytes],
) -> threading.Thread | None:
    """Paced input (`--paced`): once the contender has forwarded the topic's first record
    (it has joined), the other events are written at `rate` while it runs, so every
    contender is measured at the same throughput and with batches of the same size:
    CPU per event then compares their work, not how much CPU the machine left them."""
    if not rate:
        return None
    while counter.total(output) == 0:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited {process.returncode}")
        time.sleep(0.05)
    feeder = threading.Thread(
        target=produce, args=(settings, topic, 2, events - 1, rate), daemon=True
    )
    feeder.start()
    return feeder


def _ratios(worker: dict[str, Any], ceilings: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind, name in (("faust", "bare_faust_agent"), ("confluent", "bare_confluent_loop")):
        if kind in ceilings:
            out[name] = ceilings[kind]
            for figure in ("events_per_s", "events_per_cpu_s"):
                ratio = worker[figure] / ceilings[kind][figure]
                out[f"ratio_to_{name}_{figure}"] = round(ratio, 3)
    return out


def start(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command, cwd=REPO, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )


def stop(process: subprocess.Popen[bytes]) -> bool:
    """SIGTERM, then SIGKILL after 30 s: whether it stopped on SIGTERM."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
        return True
    except subprocess.TimeoutExpired:
        # the figures are taken: report a process that does not stop, do not lose them
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
        return False


class Watermarks:
    """How many records a topic holds, asked of one consumer for the whole run."""

    def __init__(self, settings: Settings) -> None:
        self._consumer = Consumer(client_config(settings.kafka, **{"group.id": "bench-marks"}))

    def total(self, topic: str) -> int:
        metadata = self._consumer.list_topics(topic, timeout=10).topics[topic]
        total = 0
        for partition in metadata.partitions:
            low, high = self._consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)
            total += high - low
        return total

    def close(self) -> None:
        self._consumer.close()


def measure(
    process: subprocess.Popen[bytes],
    counter: Watermarks,
    output: str,
    expected: int,
    profile: Path | None = None,
) -> dict[str, Any]:
    """Rate and CPU of a process forwarding a pre-loaded topic, from its first output to
    its last: start-up and the group join are left out alike for every contender."""

    def alive() -> None:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited {process.returncode}")

    while (began_at := counter.total(output)) == 0:
        alive()
        time.sleep(0.05)
    began, cpu_began = time.monotonic(), cpu_seconds(process.pid)
    threads_began = cpu_by_thread(process.pid)
    spy = _profile(process.pid, profile)
    while (count := counter.total(output)) < expected:
        alive()
        time.sleep(0.1)
    elapsed = time.monotonic() - began
    cpu = cpu_seconds(process.pid) - cpu_began
    threads = {
        name: round(spent - threads_began.get(name, 0.0), 2)
        for name, spent in cpu_by_thread(process.pid).items()
    }
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait(60)
    done = count - began_at
    return {
        "events_per_s": round(done / elapsed),
        "elapsed_s": round(elapsed, 2),
        # the machine is shared: CPU time per event says what a process costs whatever
        # else runs, and events per CPU second what one dedicated core would do
        "cpu_s": round(cpu, 2),
        "events_per_cpu_s": round(done / cpu) if cpu else None,
        "cpu_s_by_thread": {name: spent for name, spent in threads.items() if spent > 0},
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def _profile(pid: int, output: Path | None) -> subprocess.Popen[bytes] | None:
    """py-spy on the worker over the throughput phase (.svg: flame graph, else collapsed
    stacks), sampling the thread that holds the GIL: where the Python CPU goes, not the
    time a thread waits in a system call or for the GIL on a busy machine."""
    if output is None:
        return None
    spy = Path(sys.executable).with_name("py-spy")
    command = [str(spy), "record", "--pid", str(pid), "--rate", "200", "--nonblocking", "--gil"]
    formats = {".svg": "flamegraph", ".json": "speedscope"}
    command += ["--format", formats.get(output.suffix, "raw")]  # raw: collapsed stacks
    return subprocess.Popen([*command, "--output", str(output)], stdout=subprocess.DEVNULL)


def encode_vsphere_id(key: int) -> str:
    headers = event(key)[2]
    return dict(headers)["ce_id"].decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200000)
    parser.add_argument("--trickle", type=int, default=1000)
    parser.add_argument("--bootstrap", help="an existing broker; default: a private one")
    parser.add_argument("--stateful", action="store_true", help="the built-in stateful ones on")
    parser.add_argument(
        "--no-example",
        action="store_true",
        help="without the example processor: most events routed on their headers alone",
    )
    parser.add_argument(
        "--profile", type=Path, help="py-spy the worker into this file (.svg; ceilings beside it)"
    )
    parser.add_argument("--worker-only", action="store_true", help="no bare contenders")
    parser.add_argument(
        "--paced",
        type=float,
        default=0,
        metavar="EVENTS_PER_S",
        help="write each contender's input at this rate while it runs (default: pre-loaded)",
    )
    args = parser.parse_args()
    options: dict[str, Any] = {
        "stateful": args.stateful,
        "example": not args.no_example,
        "profile": args.profile,
        "ceilings_too": not args.worker_only,
        "paced": args.paced,
    }
    with tempfile.TemporaryDirectory(prefix="bench-streams-") as tmp:
        workdir = Path(tmp)
        if args.bootstrap:
            result = run(
                args.bootstrap,
                workdir,
                args.events,
                args.trickle,
                **options,
            )
        else:
            broker = LocalKafka(workdir / "kafka").start()
            try:
                bootstrap = broker.bootstrap_servers
                result = run(
                    bootstrap,
                    workdir,
                    args.events,
                    args.trickle,
                    **options,
                )
            finally:
                broker.stop()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
