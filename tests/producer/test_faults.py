"""Faults the producer survives: each test counts delivered, duplicated and lost events."""

from __future__ import annotations

import random
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import schemas
from devenv import LocalKafka, LocalVcsim
from devenv.activity import VcsimClient
from schemas.record import KafkaRecord
from tests.producer.conftest import (
    ProducerProcess,
    Topics,
    committed_up_to,
    producer_on_vcsim,
    read_topic,
    vcenter_entry,
    write_config,
)
from tests.role_process import wait_for
from vcstream.settings.producer import ProducerSettings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class Burst(threading.Thread):
    """Posts EventEx continuously at about `rate` per second until stopped."""

    def __init__(self, sim: LocalVcsim, rate: float) -> None:
        super().__init__(daemon=True)
        self.client = VcsimClient(sim)
        self.interval = 1 / rate
        self.halt = threading.Event()
        self.posted = 0

    def run(self) -> None:
        while not self.halt.wait(self.interval):
            self.client.post_eventex(1, "com.example.burst")
            self.posted += 1

    def stop(self) -> int:
        """Stop posting; the newest key the vCenter has."""
        self.halt.set()
        self.join(10)
        return self.client.newest_key()


def read_interval(producer: ProducerProcess) -> float | None:
    """vcstream_producer_read_interval_seconds for vCenter "sim", None when not exposed."""
    _, text = producer.get("/metrics")
    prefix = 'vcstream_producer_read_interval_seconds{vcenter="sim"} '
    found = [line for line in text.splitlines() if line.startswith(prefix)]
    return float(found[0].removeprefix(prefix)) if found else None


def identities(records: list[KafkaRecord]) -> Counter[tuple[str, int]]:
    """How often each (vCenter source, event key) is in the topic."""
    found: Counter[tuple[str, int]] = Counter()
    for record in records:
        event = schemas.decode(record)
        data: Any = event.get_data()
        found[(event.get_source(), int(data["Key"]))] += 1
    return found


def test_producer_survives_kill_9_ten_times_exactly_once(
    kafka: LocalKafka, vcsim: LocalVcsim, topics: Topics, tmp_path: Path, producer_process
) -> None:
    config = write_config(
        tmp_path / "c.yaml",
        kafka.bootstrap_servers,
        topics,
        vcenter_entry(vcsim, "sim"),
        "  pageSize: 20\n",
    )
    # slow enough that the backlog of a producer restarted over and over stays below the
    # ~1,000 events vcsim keeps (beyond that the producer reports a gap: a loss)
    burst = Burst(vcsim, rate=20)
    burst.start()
    rng = random.Random(5)
    posted_at_kills = []
    for _ in range(10):
        producer = producer_process(config)
        # random moments: during start-up, resume, alarm snapshot or mid-stream
        threading.Event().wait(rng.uniform(0.5, 4.0))
        producer.kill()
        posted_at_kills.append(burst.posted)
    newest = burst.stop()
    producer = producer_process(config)
    wait_for(lambda: committed_up_to(kafka, topics, newest), 90, f"event {newest} committed")
    # the last killed producer may have committed everything already: SIGTERM only once
    # this one is running, or it lands before its handler exists (the default action)
    wait_for(lambda: "producing from" in producer.log(), 60, "the producer running")
    assert producer.terminate() == 0

    found = identities(read_topic(kafka.bootstrap_servers, topics.events))
    duplicated = {identity: n for identity, n in found.items() if n > 1}
    keys = {key for _, key in found}
    lost = set(range(1, newest + 1)) - keys
    assert (len(duplicated), len(lost)) == (0, 0), (duplicated, sorted(lost)[:20])
    # the burst really ran across the kills (a count, not a rate: vcsim posts slower under load)
    assert posted_at_kills[-1] > posted_at_kills[0] > 0


def test_producer_survives_broker_restart_mid_stream(
    kafka_factory, vcsim: LocalVcsim, topics: Topics, tmp_path: Path, producer_process
) -> None:
    broker = kafka_factory()
    # a short transaction timeout: what was in flight when the broker died fails sooner
    config = write_config(
        tmp_path / "c.yaml",
        broker.bootstrap_servers,
        topics,
        vcenter_entry(vcsim, "sim"),
        transaction_timeout="5s",
    )
    producer: ProducerProcess = producer_process(config)
    burst = Burst(vcsim, rate=30)
    burst.start()
    wait_for(lambda: committed_up_to(broker, topics, 80), 60, "events before the restart")
    # caught up with a 30/s burst: the pacer's interval is published, within the budget
    interval = read_interval(producer)
    budget = ProducerSettings().commit_interval.total_seconds()  # the config leaves it out
    assert interval is not None and 0 <= interval <= budget

    def committed() -> float:
        return producer.metric("vcstream_producer_transactions_committed_total", vcenter="sim")

    before = committed()
    broker.kill()  # the harshest restart: no controlled shutdown
    broker.start()
    wait_for(lambda: committed() > before, 60, "a transaction committed after the restart")
    threading.Event().wait(3)  # events keep coming after the broker is back
    newest = burst.stop()
    wait_for(lambda: committed_up_to(broker, topics, newest), 90, f"event {newest} committed")
    assert producer.terminate() == 0

    found = identities(read_topic(broker.bootstrap_servers, topics.events))
    duplicated = [identity for identity, n in found.items() if n > 1]
    lost = set(range(1, newest + 1)) - {key for _, key in found}
    assert (len(duplicated), len(lost)) == (0, 0), (duplicated[:20], sorted(lost)[:20])


def test_a_second_producer_for_the_same_vcenter_takes_over(
    kafka: LocalKafka, vcsim: LocalVcsim, topics: Topics, tmp_path: Path, producer_process
) -> None:
    first, client = producer_on_vcsim(producer_process, kafka, topics, vcsim, tmp_path / "c.yaml")
    second = producer_process(tmp_path / "c.yaml")  # same vCenter, same transactional.id
    wait_for(lambda: "resuming after event" in second.log(), 60, "the second producer resuming")
    client.post_eventex(20)
    newest = client.newest_key()
    wait_for(lambda: committed_up_to(kafka, topics, newest), 60, f"event {newest} committed")
    # the first one's next transaction is fenced: its only vCenter stops, so it exits
    assert first.wait(60) == 1
    assert "another producer uses transactional.id" in first.log()
    assert second.terminate() == 0

    found = identities(read_topic(kafka.bootstrap_servers, topics.events))
    assert [n for n in found.values() if n > 1] == []
    assert set(range(1, newest + 1)) <= {key for _, key in found}


def test_producer_recovers_from_expired_session(
    kafka: LocalKafka, vcsim: LocalVcsim, topics: Topics, tmp_path: Path, producer_process
) -> None:
    producer, client = producer_on_vcsim(
        producer_process, kafka, topics, vcsim, tmp_path / "c.yaml"
    )
    assert client.terminate_other_sessions() >= 1  # the producer's session is gone
    client.post_eventex(10)
    newest = client.newest_key()
    wait_for(lambda: committed_up_to(kafka, topics, newest), 60, "events after expiry")
    assert producer.metric("vcstream_producer_reconnects_total", vcenter="sim") >= 1
    assert producer.terminate() == 0

    found = identities(read_topic(kafka.bootstrap_servers, topics.events))
    assert [n for n in found.values() if n > 1] == []
    assert set(range(1, newest + 1)) <= {key for _, key in found}
    assert "session is no longer authenticated" in producer.log()


def test_producer_recovers_from_vcsim_restart(
    kafka: LocalKafka, vcsim: LocalVcsim, topics: Topics, tmp_path: Path, producer_process
) -> None:
    producer, client = producer_on_vcsim(
        producer_process, kafka, topics, vcsim, tmp_path / "c.yaml", type_id="com.example.before"
    )
    vcsim.restart()  # same address and instance UUID, a fresh history counting from 1
    client = VcsimClient(vcsim)
    client.post_eventex(10, "com.example.after")

    def after_restart() -> list[KafkaRecord]:
        records = read_topic(kafka.bootstrap_servers, topics.events)
        wanted = b"com.vmware.vsphere.com.example.after.v0"
        after = [r for r in records if r.header("ce_type") == wanted]
        return after if len(after) >= 10 else []

    wait_for(after_restart, 60, "the events posted after the restart")
    assert producer.metric("vcstream_producer_reconnects_total", vcenter="sim") >= 1
    assert producer.terminate() == 0
    records = read_topic(kafka.bootstrap_servers, topics.events)
    ids = Counter(schemas.decode(r).get_id() for r in records)
    assert [n for n in ids.values() if n > 1] == []  # nothing duplicated across the restart
    types = Counter(r.header("ce_type") for r in records)
    assert types[b"com.vmware.vsphere.com.example.before.v0"] == 10
    assert types[b"com.vmware.vsphere.com.example.after.v0"] == 10
