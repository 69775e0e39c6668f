"""producer.batchScheduling: the producer's threads, librdkafka's too, under SCHED_BATCH."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from devenv import LocalKafka, LocalVcsim
from producer.app import schedule_threads
from producer.scheduling import batch_scheduling
from tests.producer.conftest import Topics, vcenter_entry, write_config
from tests.role_process import wait_for
from vcstream.settings.producer import ProducerSettings

linux_only = pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="SCHED_BATCH is Linux's")


def in_new_thread(step: Callable[[], object]) -> tuple[int, int]:
    """Runs `step` in a new thread (the test's own threads keep their policy); that
    thread's policy after it, and the policy of a thread it starts then."""
    seen: list[int] = []

    def child() -> None:
        seen.append(os.sched_getscheduler(threading.get_native_id()))

    def parent() -> None:
        step()
        seen.append(os.sched_getscheduler(threading.get_native_id()))
        started = threading.Thread(target=child)
        started.start()
        started.join()

    thread = threading.Thread(target=parent)
    thread.start()
    thread.join()
    assert len(seen) == 2, "the thread failed before it looked"
    return seen[0], seen[1]


@linux_only
def test_the_thread_that_asks_and_the_threads_it_starts_run_batch() -> None:
    assert in_new_thread(lambda: schedule_threads(ProducerSettings())) == (
        os.SCHED_BATCH,
        os.SCHED_BATCH,
    )


@linux_only
def test_turned_off_the_default_policy_stays() -> None:
    off = ProducerSettings.model_validate({"batchScheduling": False})
    assert in_new_thread(lambda: schedule_threads(off)) == (os.SCHED_OTHER, os.SCHED_OTHER)


@linux_only
def test_a_refused_policy_is_logged_and_the_default_stays(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(pid: int, policy: int, param: os.sched_param) -> None:
        raise PermissionError(1, "Operation not permitted")

    # what a seccomp profile that forbids sched_setscheduler answers
    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    with caplog.at_level(logging.WARNING, logger="producer.app"):
        policies = in_new_thread(lambda: schedule_threads(ProducerSettings()))
    assert policies == (os.SCHED_OTHER, os.SCHED_OTHER)
    assert (
        "producer.batchScheduling: sched_setscheduler(SCHED_BATCH) was refused: "
        "[Errno 1] Operation not permitted; the default policy stays"
    ) in caplog.messages


def test_a_platform_without_the_policy_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "SCHED_BATCH", raising=False)
    assert batch_scheduling() == "this platform has no SCHED_BATCH (it is Linux's)"


def thread_policies(pid: int) -> dict[int, tuple[str, int]]:
    """Each thread of `pid`: its name and scheduling policy."""
    policies: dict[int, tuple[str, int]] = {}
    for entry in os.listdir(f"/proc/{pid}/task"):
        tid = int(entry)
        name = Path(f"/proc/{pid}/task/{entry}/comm").read_text().strip()
        policies[tid] = (name, os.sched_getscheduler(tid))
    return policies


@pytest.mark.integration
@linux_only
def test_the_running_producer_and_its_librdkafka_threads_run_batch(
    kafka: LocalKafka, vcsim: LocalVcsim, topics: Topics, tmp_path: Path, producer_process
) -> None:
    config = write_config(
        tmp_path / "c.yaml", kafka.bootstrap_servers, topics, vcenter_entry(vcsim, "sim")
    )
    producer = producer_process(config)
    # by then the worker's transactional producer, and its threads, exist
    wait_for(lambda: "alarm definitions up to date" in producer.log(), 60, "the producer")
    assert producer.process is not None
    policies = thread_policies(producer.process.pid)
    librdkafka = {tid: p for tid, (name, p) in policies.items() if name.startswith("rdk:")}
    assert librdkafka, policies
    assert set(librdkafka.values()) == {os.SCHED_BATCH}, policies
    # the main thread, which started the workers (the /metrics thread started before)
    assert policies[producer.process.pid][1] == os.SCHED_BATCH
    assert producer.terminate() == 0
