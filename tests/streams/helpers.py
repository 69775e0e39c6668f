"""A streams worker as a real process, and Kafka helpers to feed it and read what it wrote."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Consumer, Producer, TopicPartition

import schemas
from devenv.process import REPO, free_port
from schemas import avro
from schemas.record import KafkaRecord
from tests.role_process import metric_total
from vcstream.kafka import client_config
from vcstream.settings import Settings, load_settings


def streams_config(
    tmp_path: Path,
    bootstrap: str,
    topic_name: Callable[[str], str],
    extra: dict[str, Any] | None = None,
    **streams: Any,
) -> Path:
    """A config file with topics of this test only."""
    topics = {
        key: topic_name(key)
        for key in ("events", "checkpoints", "alarmDefinitions", "alarms", "audit", "deadLetter")
    }
    config = {
        "kafka": {"bootstrapServers": bootstrap},
        "topics": topics,
        "producer": {"rawTopic": {"partitions": 2}},
        "streams": {
            "appId": topic_name("app"),
            "dataDir": str(tmp_path / "streams-data"),
            "commitInterval": "500ms",
            # a killed worker's partitions come back after this, not Kafka's 45 s
            "sessionTimeout": "6s",
            **streams,
        },
        "metrics": {"host": "127.0.0.1", "port": free_port()},
        "logging": {"level": "INFO"},
        **(extra or {}),
    }
    path = tmp_path / "vcstream.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


# An inline processor that takes 2 ms per event, for tests that stop a worker mid-stream:
# 2,000 events then last 4 s or more whatever the worker's own speed (unthrottled, a
# faster worker once wrote all of them before the kill landed).
THROTTLE = """
import time
from streams.api import inline

@inline()
def throttle(event):
    time.sleep(0.002)
    return event
"""


def throttled_config(
    tmp_path: Path, bootstrap: str, topic_name: Callable[[str], str], **streams: Any
) -> tuple[Path, dict[str, str]]:
    """`streams_config` with THROTTLE as a user's processor package, and the environment
    that lets the worker import it."""
    package = tmp_path / "throttle_processors"
    package.mkdir()
    (package / "__init__.py").write_text(THROTTLE)
    config = streams_config(
        tmp_path,
        bootstrap,
        topic_name,
        processors={"packages": ["throttle_processors"]},
        **streams,
    )
    return config, {
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    }


class StreamsWorker:
    """`vcstream streams worker` in its own process group; output in a log file."""

    def __init__(
        self, config: Path, env: dict[str, str] | None = None, argv: list[str] | None = None
    ) -> None:
        self.config = config
        self.argv = argv or [
            sys.executable,
            "-m",
            "cli",
            "streams",
            "worker",
            "--config",
            str(config),
        ]
        self.settings: Settings = load_settings(config)
        self.log_path = config.parent / "streams-worker.log"
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60, wait_healthy: bool = True) -> StreamsWorker:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env={**os.environ, **self.env},
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while wait_healthy and time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited {self.process.returncode}:\n{self.log()}")
            if self.healthy():
                return self
            time.sleep(0.2)
        if wait_healthy:
            raise TimeoutError(f"worker not healthy after {timeout}s:\n{self.log()}")
        return self

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url("/healthz"), timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.settings.metrics.port}{path}"

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        """Sum of a metric's samples whose labels include `labels`."""
        with urllib.request.urlopen(self.url("/metrics"), timeout=5) as response:
            return metric_total(response.read().decode(), name, labels or {})

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()
            return -9


def produce(settings: Settings, topic: str, records: list[KafkaRecord]) -> None:
    # in produce order per partition even when a send is retried
    producer = Producer(
        client_config(settings.kafka, **{"linger.ms": 5, "enable.idempotence": True})
    )
    for record in records:
        headers: list[tuple[str, str | bytes | None]] = list(record.headers)
        # the record's own timestamp where it has one (0: the client's clock)
        timestamp = record.timestamp_ms or 0
        producer.produce(
            topic, value=record.value, key=record.key, headers=headers, timestamp=timestamp
        )
    assert producer.flush(30) == 0


def produce_in_transactions(
    settings: Settings, topic: str, records: list[KafkaRecord], size: int
) -> None:
    """`size` records per committed transaction, as the producer writes: a marker after each."""
    producer = Producer(
        client_config(settings.kafka, **{"transactional.id": f"test-{topic}-{time.time_ns()}"})
    )
    producer.init_transactions(30)
    for start in range(0, len(records), size):
        producer.begin_transaction()
        for record in records[start : start + size]:
            headers: list[tuple[str, str | bytes | None]] = list(record.headers)
            producer.produce(topic, value=record.value, key=record.key, headers=headers)
        producer.commit_transaction(30)


def committed_through(settings: Settings, topic: str) -> bool:
    """Whether the worker's group has committed every record of the topic."""
    consumer = Consumer(client_config(settings.kafka, **{"group.id": settings.streams.app_id}))
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        partitions = [TopicPartition(topic, p) for p in metadata.partitions]
        committed = consumer.committed(partitions, timeout=10)
        for done in committed:
            _, high = consumer.get_watermark_offsets(done, timeout=10)
            if high > 0 and done.offset < high:
                return False
        return True
    finally:
        consumer.close()


def consume(
    settings: Settings,
    topic: str,
    count: int,
    timeout: float = 60,
    settle: float = 0.0,
    until: Callable[[list[KafkaRecord]], bool] | None = None,
) -> list[KafkaRecord]:
    """At least `count` records of a topic from its start (then `settle` s more for extras).

    With `until`, reading goes on past `count` until `until(records)` holds: a count alone
    is reached early when the topic holds duplicates, and would stop before the last
    distinct record arrived.
    """
    consumer = Consumer(
        client_config(
            settings.kafka,
            **{
                "group.id": f"test-{topic}-{time.monotonic_ns()}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            },
        )
    )
    consumer.subscribe([topic])
    found: list[KafkaRecord] = []
    deadline = time.monotonic() + timeout
    extra_until: float | None = None
    try:
        while time.monotonic() < deadline:
            if extra_until is not None and time.monotonic() >= extra_until:
                break
            message = consumer.poll(0.2)
            if message is None or message.error():
                continue
            found.append(KafkaRecord.from_confluent(message))
            enough = len(found) >= count and (until is None or until(found))
            if enough and extra_until is None:
                extra_until = time.monotonic() + settle
    finally:
        consumer.close()
    return found


class TopicReader:
    """Every record of a topic from its start, read as far as it is written each time it
    is asked (assigned, not subscribed: no group to join, nothing committed)."""

    def __init__(self, settings: Settings, topic: str) -> None:
        from confluent_kafka import OFFSET_BEGINNING

        self.records: list[KafkaRecord] = []
        self._consumer = Consumer(
            client_config(settings.kafka, **{"group.id": "reader", "enable.auto.commit": False})
        )
        metadata = self._consumer.list_topics(topic, timeout=10).topics[topic]
        self._consumer.assign(
            [TopicPartition(topic, p, OFFSET_BEGINNING) for p in metadata.partitions]
        )

    def read(self, quiet: float = 0.3) -> list[KafkaRecord]:
        """What was written so far (until nothing came for `quiet` seconds)."""
        while True:
            message = self._consumer.poll(quiet)
            if message is None:
                return self.records
            if not message.error():
                self.records.append(KafkaRecord.from_confluent(message))

    def ids(self) -> set[str]:
        return {schemas.decode(record).get_id() for record in self.read()}

    def close(self) -> None:
        self._consumer.close()


def definition_record(
    vcenter_uuid: str, source: str, alarm: str, name: str, alarm_info: dict[str, Any]
) -> KafkaRecord:
    now = datetime.now(UTC)
    value = avro.encode(
        "alarm_definition",
        {
            "vcenterUuid": vcenter_uuid,
            "source": source,
            "alarm": alarm,
            "name": name,
            "systemName": None,
            "description": f"{name} (test)",
            "enabled": True,
            "entityType": "Folder",
            "entityValue": "group-d1",
            "lastModifiedTime": now,
            "lastModifiedUser": None,
            "expressionSummary": [],
            "alarmInfo": json.dumps(alarm_info),
        },
    )
    return KafkaRecord(value=value, key=f"{vcenter_uuid}/{alarm}".encode())


def decoded(records: list[KafkaRecord]) -> list[Any]:
    return [schemas.decode(record) for record in records]
