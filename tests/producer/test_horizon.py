"""The Horizon source in the producer: v0.8 events exactly once, tokens, outages, gaps."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import schemas
from devenv import LocalKafka, LocalVcsim
from devenv.activity import VcsimClient
from devenv.horizon import HorizonStandIn
from producer.checkpoint import Checkpoint
from producer.horizon_position import checkpoint_key, decode_checkpoint
from schemas.horizon import horizon_event_id
from tests.producer.conftest import Topics, read_topic, read_topic_if_ready, vcenter_entry
from tests.producer.horizon_helpers import (
    all_written,
    emit_and_wait,
    exactly_once,
    horizon_entry,
    horizon_ids,
    one_server_config,
    write_horizon_config,
)
from tests.role_process import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def horizon() -> Iterator[HorizonStandIn]:
    server = HorizonStandIn().start()
    yield server
    server.stop()


def test_horizon_events_arrive_once_with_the_v08_attributes(
    kafka: LocalKafka, horizon: HorizonStandIn, topics: Topics, tmp_path: Path, producer_process
) -> None:
    horizon.emit(30, "VLSI_USERLOGGEDIN_REST")  # more than a page (20), before the start
    config = one_server_config(tmp_path, kafka, topics, horizon)
    producer = producer_process(config)
    horizon.emit(5, "BROKER_USER_AUTHFAILED_BAD_USER_PASSWORD", "AUDIT_FAIL")
    wait_for(lambda: all_written(kafka, topics, horizon), 60, "every Horizon event")
    assert producer.terminate() == 0

    exactly_once(kafka, topics, horizon)
    records = read_topic(kafka.bootstrap_servers, topics.events)
    events = [schemas.decode(r) for r in records]
    assert {e.get_type() for e in events} == {
        "com.vmware.horizon.vlsi_userloggedin_rest.v0",
        "com.vmware.horizon.broker_user_authfailed_bad_user_password.v0",
    }
    assert {e.get_source() for e in events} == {horizon.url}
    assert {r.key for r in records} == {b"horizon:" + horizon.url.split("//")[1].encode()}
    times = []
    for event in events:
        data = event.get_data()
        moment = event.get_time()
        assert isinstance(data, dict) and moment is not None
        assert round(moment.timestamp() * 1000) == data["time"]
        assert event.get_id() == horizon_event_id(horizon.url, data["id"])
        times.append(data["time"])
        assert event.get_datacontenttype() == "application/json"
        assert set(data) >= {"id", "time", "type", "severity", "module", "message", "user_id"}
    checkpoints = read_topic(kafka.bootstrap_servers, topics.checkpoints)
    mine = [c for c in checkpoints if c.key == checkpoint_key(horizon.url)]
    assert decode_checkpoint(mine[-1].value or b"").time_ms == max(times)


def test_horizon_expired_token_is_refreshed_and_reading_continues(
    kafka: LocalKafka, horizon: HorizonStandIn, topics: Topics, tmp_path: Path, producer_process
) -> None:
    config = one_server_config(tmp_path, kafka, topics, horizon)
    producer = producer_process(config)
    emit_and_wait(kafka, topics, horizon, 5, "the first events")
    horizon.expire_tokens()
    emit_and_wait(kafka, topics, horizon, 5, "the events after expiry")
    assert producer.metric("vcstream_producer_horizon_logins_total", how="refresh") >= 1
    assert producer.metric("vcstream_producer_horizon_logins_total", how="login") == 1
    assert horizon.requests["401"] >= 1
    assert producer.terminate() == 0
    exactly_once(kafka, topics, horizon)


def test_horizon_server_restart_forgets_tokens_and_the_producer_logs_in_again(
    kafka: LocalKafka, horizon: HorizonStandIn, topics: Topics, tmp_path: Path, producer_process
) -> None:
    config = one_server_config(tmp_path, kafka, topics, horizon)
    producer = producer_process(config)
    emit_and_wait(kafka, topics, horizon, 5, "the first events")
    horizon.restart()
    emit_and_wait(kafka, topics, horizon, 5, "the events after the restart")
    assert producer.metric("vcstream_producer_horizon_logins_total", how="login") >= 2
    assert producer.terminate() == 0
    exactly_once(kafka, topics, horizon)


def test_horizon_server_down_backs_off_and_resumes(
    kafka: LocalKafka, horizon: HorizonStandIn, topics: Topics, tmp_path: Path, producer_process
) -> None:
    config = one_server_config(tmp_path, kafka, topics, horizon)
    producer = producer_process(config)
    emit_and_wait(kafka, topics, horizon, 5, "the first events")
    horizon.unavailable = True
    horizon.emit(5)
    # the waits double from reconnect.initialDelay (200ms) to maxDelay (2s)
    wait_for(lambda: "next attempt in 1.6s" in producer.log(), 60, "the backoff growing")
    status, body = producer.get("/healthz")
    assert status == 503 and "horizon:cs" in body
    assert producer.metric("vcstream_producer_horizon_unavailable_total", server="cs") >= 4
    assert not all_written(kafka, topics, horizon)  # nothing read while it is down
    horizon.unavailable = False
    wait_for(lambda: all_written(kafka, topics, horizon), 60, "the events after the outage")
    wait_for(lambda: producer.get("/healthz")[0] == 200, 30, "healthy again")
    assert producer.terminate() == 0
    exactly_once(kafka, topics, horizon)


def test_horizon_history_gap_is_reported_and_reading_goes_on(
    kafka: LocalKafka, horizon: HorizonStandIn, topics: Topics, tmp_path: Path, producer_process
) -> None:
    config = one_server_config(tmp_path, kafka, topics, horizon)
    first = producer_process(config)
    emit_and_wait(kafka, topics, horizon, 5, "the first events")
    assert first.terminate() == 0
    lost = horizon.emit(3)
    wait_for(lambda: now_ms() > lost[-1]["time"], 5, "the next millisecond")
    later = horizon.emit(4)
    # the event database's retention drops the checkpoint's events and the 3 after them
    horizon.purge_before(later[0]["time"])
    second = producer_process(config)
    wait_for(lambda: all_written(kafka, topics, horizon), 60, "the surviving events")
    wait_for(
        lambda: second.metric("vcstream_producer_horizon_history_gaps_total", server="cs") == 1,
        30,
        "the gap reported",
    )
    assert "gap: the oldest event the server returns" in second.log()
    assert second.terminate() == 0
    written = horizon_ids(kafka, topics, horizon)
    assert not {e["id"] for e in lost} & set(written)
    assert [n for n in written.values() if n > 1] == []


def now_ms() -> int:
    return int(time.time() * 1000)


def vcenter_committed_up_to(kafka: LocalKafka, topics: Topics, key: int) -> bool:
    """Like conftest.committed_up_to, among Horizon checkpoints (another schema)."""
    records = read_topic_if_ready(kafka.bootstrap_servers, topics.checkpoints)
    mine = [r for r in records if not (r.key or b"").startswith(b"horizon/")]
    return bool(mine) and Checkpoint.decode(mine[-1].value or b"").position.key >= key


def test_one_failing_horizon_server_stops_neither_the_other_nor_the_vcenter(
    kafka: LocalKafka,
    vcsim: LocalVcsim,
    horizon: HorizonStandIn,
    topics: Topics,
    tmp_path: Path,
    producer_process,
) -> None:
    broken = HorizonStandIn().start()
    try:
        broken.unavailable = True
        entries = horizon_entry(horizon, "good") + horizon_entry(broken, "bad", password="wrong")
        config = write_horizon_config(
            tmp_path / "c.yaml", kafka, topics, entries, vcenters=vcenter_entry(vcsim, "sim")
        )
        producer = producer_process(config)
        horizon.emit(5)
        client = VcsimClient(vcsim)
        client.post_eventex(5, "com.example.beside.horizon")
        newest = client.newest_key()
        wait_for(lambda: all_written(kafka, topics, horizon), 60, "the good server's events")
        wait_for(lambda: vcenter_committed_up_to(kafka, topics, newest), 60, "the vCenter's events")
        assert "its worker keeps trying" in producer.log()  # down at start: not waited for
        # retried while down (the backoff decides when, so waited for, not asserted at once)
        wait_for(
            lambda: (
                producer.metric("vcstream_producer_horizon_unavailable_total", server="bad") >= 2
            ),
            60,
            "the down server retried",
        )
        broken.unavailable = False  # now it answers, but refuses the password
        wait_for(lambda: "login refused" in producer.log(), 60, "the refused login")
        assert producer.terminate() == 0
        exactly_once(kafka, topics, horizon)
    finally:
        broken.stop()


def test_wrong_horizon_password_at_start_exits_2_without_showing_it(
    kafka: LocalKafka, horizon: HorizonStandIn, topics: Topics, tmp_path: Path, producer_process
) -> None:
    wrong = "not-the-password-20c1"
    entry = horizon_entry(horizon, "cs", password=wrong)
    producer = producer_process(write_horizon_config(tmp_path / "c.yaml", kafka, topics, entry))
    horizon.emit(3)
    assert producer.wait(60) == 2
    log = producer.log()
    assert "configuration error: Horizon cs: login refused for example\\vcstream" in log
    assert wrong not in log
    assert horizon_ids(kafka, topics, horizon) == {}


def test_horizon_server_that_does_not_answer_at_start_holds_nothing_up(
    kafka: LocalKafka, horizon: HorizonStandIn, topics: Topics, tmp_path: Path, producer_process
) -> None:
    silent = HorizonStandIn().start()
    try:
        silent.stall = 60  # answers after the 60s request timeout: never, for the producer
        entries = horizon_entry(horizon, "good") + horizon_entry(silent, "silent")
        producer = producer_process(
            write_horizon_config(tmp_path / "c.yaml", kafka, topics, entries)
        )
        horizon.emit(3)
        # well before the request timeout: the start-up check waits 10s at most
        wait_for(lambda: all_written(kafka, topics, horizon), 45, "the answering server's events")
        assert "Horizon silent" in producer.log() and "timed out" in producer.log()
        assert producer.terminate() == 0
    finally:
        silent.stall = 0
        silent.stop()
