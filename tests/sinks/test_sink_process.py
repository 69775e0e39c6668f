"""`vcstream sink` as a real process: kill -9 mid-batch loses and duplicates nothing."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sinks.audit.file_layout import read_file
from sinks.audit.files import AuditFiles
from sinks.audit.verify import verify_files
from tests.sinks.helpers import ensure_topics_for, produce, vm_records

pytestmark = pytest.mark.integration
TOTAL = 3000


def stored_offsets(root: Path) -> list[int]:
    store = AuditFiles(root)
    return [r["offset"] for f in store.files() for r in read_file(f.path)]


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_audit_sink_killed_with_sigkill_mid_batch_loses_and_duplicates_nothing(
    kafka, topic_name, tmp_path
):
    topic, dlq = topic_name("audit"), topic_name("dlq")
    produce(kafka.bootstrap_servers, topic, vm_records(TOTAL, vms=50))
    ensure_topics_for(kafka.bootstrap_servers, [dlq])
    root = tmp_path / "audit"
    config = tmp_path / "vcstream.yaml"
    config.write_text(
        json.dumps(
            {
                "kafka": {
                    "bootstrapServers": kafka.bootstrap_servers,
                    # the killed member's partitions move after this, not the 45 s default
                    "clientProperties": {"session.timeout.ms": "6000"},
                },
                "metrics": {"enabled": False},
                "sinks": {
                    "audit": {
                        "topics": [topic],
                        # files close (and commit) every 120 records: killed with one open
                        "files": {"directory": str(root), "rotateRecords": 120},
                        "batch": {"maxRecords": 40, "maxWait": "PT0.01S"},
                        "delivery": {"deadLetterTopic": dlq},
                    }
                },
            }
        )
    )
    command = [sys.executable, "-m", "cli", "sink", "audit", "--config", str(config)]

    first = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(stored_offsets(root)) >= 400, 60, "the first files")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    stored_at_kill = len(stored_offsets(root))
    assert stored_at_kill < TOTAL  # killed with work left

    second = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(stored_offsets(root)) >= TOTAL, 90, "every record")
        time.sleep(1)  # a duplicate would show up after the last batch
    finally:
        second.send_signal(signal.SIGTERM)
        exit_code = second.wait(30)

    assert exit_code == 0
    offsets = stored_offsets(root)
    assert len(offsets) == TOTAL  # no duplicate
    assert sorted(offsets) == list(range(TOTAL))  # no loss
    assert not list(root.rglob("*.tmp"))
    assert verify_files(AuditFiles(root)).ok
