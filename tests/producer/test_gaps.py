"""Events gone from the vCenter's history before they were read: reported, never silent."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from devenv import LocalKafka, LocalVcsim
from tests.producer.conftest import (
    Topics,
    committed_up_to,
    event_key,
    producer_on_vcsim,
    read_topic,
)
from tests.role_process import wait_for

pytestmark = pytest.mark.integration


def test_producer_reports_events_pruned_while_it_was_stalled(
    kafka: LocalKafka, vcsim: LocalVcsim, topics: Topics, tmp_path: Path, producer_process
) -> None:
    producer, client = producer_on_vcsim(
        producer_process, kafka, topics, vcsim, tmp_path / "c.yaml", first_events=5
    )
    assert producer.process is not None
    # the producer stalls (SIGSTOP) while 1,200 events pass: vcsim keeps ~1,000
    os.kill(producer.process.pid, signal.SIGSTOP)
    try:
        client.post_eventex(1200)
    finally:
        os.kill(producer.process.pid, signal.SIGCONT)
    newest = client.newest_key()
    wait_for(lambda: committed_up_to(kafka, topics, newest), 90, f"event {newest} committed")

    keys = {event_key(r) for r in read_topic(kafka.bootstrap_servers, topics.events)}
    lost = len(set(range(1, max(keys) + 1)) - keys)
    assert lost > 0  # vcsim really dropped events the producer had not read
    missed = producer.metric("vcstream_producer_events_missed_total", vcenter="sim")
    assert missed == lost  # every lost event is counted
    gaps = producer.metric("vcstream_producer_history_gaps_total", vcenter="sim", reason="key_gap")
    assert gaps >= 1
    assert "missing from the vCenter's history" in producer.log()
    assert producer.terminate() == 0
