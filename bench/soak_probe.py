"""What bench.soak reads while the pipeline runs: each consumer group's committed offsets
against the log end, a process's memory and CPU from /proc, the roles' own counters, and
the ce_id of every record in a range of the audit topic (for the restart's duplicates).

Everything here asks once and answers with what it got: a process gone or a broker slow
to answer is a `None` in a sample, not an exception that ends a 20-minute run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    IsolationLevel,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec

TP = tuple[str, int]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
ADMIN_TIMEOUT = 10.0  # seconds for one admin request: a sample is late, never stuck


def tp_name(tp: TP) -> str:
    return f"{tp[0]}/{tp[1]}"


def rss_bytes(pid: int) -> int | None:
    """Resident memory now (VmRSS; VmHWM would hide a leak behind a start-up peak)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU of every thread of the process so far."""
    try:
        # fields after the command name, which is in parentheses and may hold spaces
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def usage(pids: list[int]) -> tuple[int | None, float | None]:
    """RSS and CPU seconds of processes together (one gone: unknown, not a smaller sum)."""
    rss = [rss_bytes(pid) for pid in pids]
    cpu = [cpu_seconds(pid) for pid in pids]
    known_rss = [value for value in rss if value is not None]
    known_cpu = [value for value in cpu if value is not None]
    return (
        sum(known_rss) if pids and len(known_rss) == len(pids) else None,
        sum(known_cpu) if pids and len(known_cpu) == len(pids) else None,
    )


def metric_total(text: str, *names: str) -> float:
    """The sum of every series of the named metrics in a Prometheus text exposition."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(names):
            name = line.split("{", 1)[0].split(" ", 1)[0]
            if name in names:
                total += float(line.rsplit(" ", 1)[1])
    return total


class Offsets:
    """Log end offsets and committed offsets, through one admin client."""

    def __init__(self, bootstrap: str) -> None:
        self.admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})

    def partitions(self, topics: Iterable[str]) -> list[TP]:
        metadata = self.admin.list_topics(timeout=ADMIN_TIMEOUT)
        found: list[TP] = []
        for topic in topics:
            described = metadata.topics.get(topic)
            if described is not None:
                found += [(topic, p) for p in sorted(described.partitions)]
        return found

    def ends(self, partitions: Iterable[TP]) -> dict[TP, int]:
        """Where a read_committed consumer can read up to (the last stable offset): the
        producer's open transaction is not lag anyone could have consumed."""
        request = {TopicPartition(t, p): OffsetSpec.latest() for t, p in partitions}
        if not request:
            return {}
        futures = self.admin.list_offsets(
            request,
            isolation_level=IsolationLevel.READ_COMMITTED,
            request_timeout=ADMIN_TIMEOUT,
        )
        return {(tp.topic, tp.partition): int(f.result().offset) for tp, f in futures.items()}

    def committed(self, group: str) -> dict[TP, int]:
        """Every offset the group committed (none yet: absent)."""
        request = [ConsumerGroupTopicPartitions(group)]
        futures = self.admin.list_consumer_group_offsets(request, request_timeout=ADMIN_TIMEOUT)
        answer = futures[group].result()
        return {
            (tp.topic, tp.partition): int(tp.offset)
            for tp in answer.topic_partitions or []
            if tp.offset >= 0
        }

    def group_lags(self, groups: dict[str, list[str]]) -> dict[str, dict[str, dict[str, Any]]]:
        """Per group, per partition of its input topics: committed, end and the lag between
        (a partition with nothing committed counts from its start: offset 0)."""
        inputs = {group: self.partitions(topics) for group, topics in groups.items()}
        committed = {group: self.committed(group) for group in groups}
        wanted = {tp for tps in inputs.values() for tp in tps}
        wanted |= {tp for offsets in committed.values() for tp in offsets}
        ends = self.ends(sorted(wanted))
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for group in groups:
            rows: dict[str, dict[str, Any]] = {}
            for tp in sorted(set(inputs[group]) | set(committed[group])):
                end = ends.get(tp)
                done = committed[group].get(tp)
                lag = None if end is None else max(0, end - (done or 0))
                rows[tp_name(tp)] = {"committed": done, "end": end, "lag": lag}
            out[group] = rows
        return out


def audit_ids(
    bootstrap: str, topic: str, ranges: dict[int, tuple[int, int]], timeout: float
) -> tuple[list[bytes], bool]:
    """The ce_id header of every record in [start, end) of each partition of `topic`, in
    order read; and whether every range was read completely before `timeout`."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench-soak-audit-reader",  # assign only: nothing is committed
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "log_level": 0,
        }
    )
    todo = {p: end for p, (start, end) in ranges.items() if end > start}
    consumer.assign([TopicPartition(topic, p, ranges[p][0]) for p in todo])
    ids: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while todo and time.monotonic() < deadline:
            for message in consumer.consume(1000, timeout=1.0):
                partition, offset = message.partition(), message.offset()
                if partition is None or offset is None or partition not in todo:
                    continue
                end = todo[partition]
                error = message.error()
                if error is not None:
                    # the end of the log, past a range whose last offsets hold no record
                    if error.code() == KafkaError._PARTITION_EOF and offset >= end:
                        del todo[partition]
                    continue
                if offset < end:
                    header = dict(message.headers() or []).get("ce_id")
                    ids.append(header if isinstance(header, bytes) else b"")
                if offset + 1 >= end:
                    del todo[partition]
    except KafkaException:
        return ids, False
    finally:
        consumer.close()
    return ids, not todo
