"""The producer end to end: real vcsim events in, VEBA CloudEvents out, exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

import schemas
from devenv import LocalKafka, LocalVcsim
from devenv.activity import VcsimClient
from producer.checkpoint import Checkpoint
from producer.collector import REARM_AFTER_EVENTS
from schemas import avro
from schemas.record import KafkaRecord
from tests.producer.conftest import Topics, committed_up_to, read_topic, vcenter_entry, write_config
from tests.role_process import wait_for

# the producer's doorbell as its metrics show it
WAITING = "vcstream_producer_waiting_for_change"
REARMS = "vcstream_producer_doorbell_rearms_total"

pytestmark = pytest.mark.integration


def data_of(event: Any) -> dict[str, Any]:
    data = event.get_data()
    assert isinstance(data, dict)
    return data


def event_keys(records: list[KafkaRecord]) -> list[int]:
    return [int(data_of(schemas.decode(record))["Key"]) for record in records]


def test_every_event_once_in_order_with_veba_headers(
    kafka: LocalKafka, vcsim: LocalVcsim, topics: Topics, tmp_path: Path, producer_process
) -> None:
    client = VcsimClient(vcsim)
    config = write_config(
        tmp_path / "c.yaml", kafka.bootstrap_servers, topics, vcenter_entry(vcsim, "sim")
    )
    producer = producer_process(config)
    # events before and after the producer starts: power operations, an alarm turning
    # red and EventEx, all made with the real API
    client.power_cycle(client.vms[0])
    wait_for(lambda: "alarm definitions up to date" in producer.log(), 60, "the producer")
    alarm = next(a for a in client.content.alarmManager.GetAlarm(None) if a._moId == "alarm-384")
    client.post_alarm_status_changed(alarm, "red")
    client.post_eventex(20, "com.example.burst")
    client.power_cycle(client.vms[1])
    expected = client.newest_key()

    def committed() -> list[KafkaRecord]:
        records = read_topic(kafka.bootstrap_servers, topics.events)
        return records if len(records) >= expected else []

    wait_for(committed, 60, f"{expected} events")
    status, body = producer.get("/healthz")
    assert status == 200, body
    assert json.loads(body)["checks"] == {"vcenter:sim": "ok", "kafka:sim": "ok"}
    alarm_events = producer.metric(
        "vcstream_producer_events_total", vcenter="sim", type="AlarmStatusChangedEvent"
    )
    assert alarm_events == 1
    assert producer.terminate() == 0
    records = read_topic(kafka.bootstrap_servers, topics.events)
    keys = event_keys(records)
    # every key once, none lost (the producer's own logins add events of their own)
    assert sorted(keys) == list(range(1, len(keys) + 1))
    assert len(keys) >= expected
    # in order per record key (= per entity), the unit Kafka keeps ordered
    by_key: dict[bytes | None, list[int]] = defaultdict(list)
    for record, key in zip(records, keys, strict=True):
        by_key[record.key].append(key)
    assert all(seq == sorted(seq) for seq in by_key.values())

    events = {int(data_of(schemas.decode(r))["Key"]): schemas.decode(r) for r in records}
    red = next(e for e in events.values() if e.get_type().endswith("AlarmStatusChangedEvent.v0"))
    assert red.get_type() == "com.vmware.vsphere.AlarmStatusChangedEvent.v0"
    assert red.get_source() == vcsim.url
    assert red.get_extension("eventclass") == "event"
    assert data_of(red)["Alarm"]["Alarm"] == {"Type": "Alarm", "Value": "alarm-384"}
    ex = next(e for e in events.values() if e.get_subject() == "EventEx")
    assert ex.get_type() == "com.vmware.vsphere.com.example.burst.v0"
    assert ex.get_extension("eventclass") == "eventex"

    # a client not written here sees the CloudEvent headers of the Kafka binding
    kcat = subprocess.run(
        ["kcat", "-b", kafka.bootstrap_servers, "-C", "-t", topics.events, "-e", "-q",
         "-X", "isolation.level=read_committed", "-f", "%h\\n"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    header_lines = kcat.stdout.splitlines()
    assert len(header_lines) == len(keys)
    for line in header_lines:
        headers = dict(item.split("=", 1) for item in line.split(","))
        assert headers["ce_specversion"] == "1.0"
        assert headers["ce_source"] == vcsim.url
        assert headers["ce_type"].startswith("com.vmware.vsphere.")
        assert headers["content-type"] == "application/json"
        assert {"ce_id", "ce_time", "ce_subject", "ce_eventclass"} <= headers.keys()

    # the checkpoint names the newest event, and the metrics count what was written
    checkpoints = read_topic(kafka.bootstrap_servers, topics.checkpoints)
    assert checkpoints[-1].value is not None
    assert Checkpoint.decode(checkpoints[-1].value).position.key == max(keys)
    client.close()


def test_alarm_definitions_follow_alarm_events(
    kafka: LocalKafka, vcsim: LocalVcsim, topics: Topics, tmp_path: Path, producer_process
) -> None:
    client = VcsimClient(vcsim)
    config = write_config(
        tmp_path / "c.yaml", kafka.bootstrap_servers, topics, vcenter_entry(vcsim, "sim")
    )
    producer = producer_process(config)
    wait_for(lambda: "alarm definitions up to date" in producer.log(), 60, "the producer")
    manager = client.content.alarmManager
    created = client.create_cpu_alarm("vcstream test alarm", "CPU above thresholds")
    client.post_alarm_event("AlarmCreatedEvent", created, "vcstream test alarm")
    removed = manager.GetAlarm(None)[1]
    client.post_alarm_event("AlarmRemovedEvent", removed, removed.info.name)
    uuid = client.content.about.instanceUuid
    created_key = f"{uuid}/{created._moId}".encode()
    removed_key = f"{uuid}/{removed._moId}".encode()

    def definitions() -> dict[bytes | None, bytes | None]:
        records = read_topic(kafka.bootstrap_servers, topics.alarm_definitions)
        state = {record.key: record.value for record in records}
        return state if created_key in state and state.get(removed_key, b"") is None else {}

    state = wait_for(definitions, 60, "the created alarm's definition and a tombstone")
    assert state[removed_key] is None
    record = avro.decode("alarm_definition", state[created_key] or b"")
    assert record["name"] == "vcstream test alarm"
    assert record["entityType"] == "Datacenter"
    assert record["expressionSummary"] == [
        {"kind": "MetricAlarmExpression", "operator": "isAbove", "metric": "6/",
         "statePath": None, "eventTypeId": None, "yellow": "7500", "red": "9000"}
    ]  # fmt: skip
    assert json.loads(record["alarmInfo"])["Name"] == "vcstream test alarm"
    # the predefined alarm-384 was published at start
    assert f"{uuid}/alarm-384".encode() in state
    assert producer.terminate() == 0
    client.close()


def test_event_after_a_busy_spell_rings_the_replaced_doorbell(
    kafka: LocalKafka, vcsim: LocalVcsim, topics: Topics, tmp_path: Path, producer_process
) -> None:
    """After a burst the change feed is replaced rather than drained; the next lone
    event must still wake the producer at once, not after the 60 s poll interval."""
    client = VcsimClient(vcsim)
    config = write_config(
        tmp_path / "c.yaml",
        kafka.bootstrap_servers,
        topics,
        vcenter_entry(vcsim, "sim"),
        poll_interval="60s",
    )
    producer = producer_process(config)
    # caught up and waiting: the burst wakes it once, and no rearm is still to come
    wait_for(lambda: producer.metric(WAITING, vcenter="sim") == 1, 60, "the producer to wait")
    rearms = producer.metric(REARMS, vcenter="sim")
    assert producer.process is not None
    os.kill(producer.process.pid, signal.SIGSTOP)  # the whole burst is read in one go
    try:
        client.post_eventex(REARM_AFTER_EVENTS + 50, "com.example.burst")
    finally:
        os.kill(producer.process.pid, signal.SIGCONT)
    burst_end = client.newest_key()
    wait_for(lambda: committed_up_to(kafka, topics, burst_end), 60, "the burst")
    wait_for(lambda: producer.metric(REARMS, vcenter="sim") > rearms, 60, "the doorbell replaced")
    # seen after the rearm, a wait is one on the new doorbell, from the version its first
    # answer gave: an event posted now can only come in through its ring (or the poll)
    wait_for(lambda: producer.metric(WAITING, vcenter="sim") == 1, 60, "a wait on the new doorbell")

    client.post_eventex(1, "com.example.alone")
    alone = client.newest_key()
    # the deadline is the check: well inside the 60 s poll interval, only a doorbell can
    # have woken the producer (no stopwatch: a busy machine must not fail it)
    wait_for(lambda: committed_up_to(kafka, topics, alone), 30, "the lone event")
    assert "reconnecting" not in producer.log()  # woken by its doorbell, not by recovery
    first = burst_end - REARM_AFTER_EVENTS - 49
    keys = event_keys(read_topic(kafka.bootstrap_servers, topics.events))
    assert len(keys) == len(set(keys))
    # one VM's events share a partition: all there, once each, in order
    assert [key for key in keys if first <= key <= alone] == list(range(first, alone + 1))


def test_events_trickling_in_share_one_transaction_per_commit_interval(
    kafka: LocalKafka, vcsim: LocalVcsim, topics: Topics, tmp_path: Path, producer_process
) -> None:
    client = VcsimClient(vcsim)
    config = write_config(
        tmp_path / "c.yaml",
        kafka.bootstrap_servers,
        topics,
        vcenter_entry(vcsim, "sim"),
        producer="  commitInterval: 3s",
    )
    producer = producer_process(config)
    wait_for(lambda: "alarm definitions up to date" in producer.log(), 60, "the producer")
    client.post_eventex(1, "com.example.first")  # after a quiet spell: committed at once
    first = client.newest_key()
    wait_for(lambda: committed_up_to(kafka, topics, first), 60, "the first event")
    before = producer.metric("vcstream_producer_transactions_committed_total", vcenter="sim")

    pace = threading.Event()
    for _ in range(10):  # a trickle: each event on its own wakes the producer
        client.post_eventex(1, "com.example.trickle")
        pace.wait(0.05)
    newest = client.newest_key()
    wait_for(lambda: committed_up_to(kafka, topics, newest), 60, "the trickle")

    after = producer.metric("vcstream_producer_transactions_committed_total", vcenter="sim")
    assert after - before <= 2  # one per 3 s interval, not one per event
    keys = event_keys(read_topic(kafka.bootstrap_servers, topics.events))
    assert [key for key in keys if first <= key <= newest] == list(range(first, newest + 1))
