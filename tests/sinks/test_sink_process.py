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
HALF = 1500
TOTAL = 2 * HALF
ROTATE = 120  # TOTAL is a multiple of it, HALF is not


def stored_offsets(root: Path) -> list[int]:
    store = AuditFiles(root)
    return [r["offset"] for f in store.files() for r in read_file(f.path)]


def open_files(root: Path) -> list[Path]:
    return list(root.rglob("*.avro.tmp"))


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
    # Files close (and commit) every ROTATE records. The first half is not a multiple of
    # ROTATE, so once the sink has read it, its last records sit in an open file that
    # nothing closes (the interval is 600 s): the kill lands with that file open whatever
    # the sink's speed. The second half arrives only after the kill.
    first_half, second_half = vm_records(HALF, vms=50), vm_records(HALF, vms=50, start=HALF + 1)
    produce(kafka.bootstrap_servers, topic, first_half)
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
                        "files": {"directory": str(root), "rotateRecords": ROTATE},
                        "batch": {"maxRecords": 40, "maxWait": "PT0.01S"},
                        "delivery": {"deadLetterTopic": dlq},
                    }
                },
            }
        )
    )
    command = [sys.executable, "-m", "cli", "sink", "audit", "--config", str(config)]
    sealed_before_kill = HALF - HALF % ROTATE

    first = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    try:
        wait_for(
            lambda: len(stored_offsets(root)) >= sealed_before_kill and open_files(root),
            60,
            "the first half's sealed files and the open one",
        )
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    assert len(stored_offsets(root)) == sealed_before_kill
    assert open_files(root)  # killed with records in an open file
    produce(kafka.bootstrap_servers, topic, second_half)

    second = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    try:
        # one partition, read in order: a record stored twice would be stored before the last
        wait_for(lambda: TOTAL - 1 in stored_offsets(root), 90, "the last record")
    finally:
        second.send_signal(signal.SIGTERM)
        exit_code = second.wait(30)

    assert exit_code == 0
    offsets = stored_offsets(root)
    assert len(offsets) == TOTAL  # no duplicate
    assert sorted(offsets) == list(range(TOTAL))  # no loss
    assert not open_files(root)
    assert verify_files(AuditFiles(root)).ok
