"""The read API with `curl`: range, one event, reads to the end, and watches."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from devenv import LocalKafka
from tests.gateway.conftest import (
    BASIC,
    GatewayProcess,
    curl,
    gateway_config,
)
from tests.gateway.test_ingest import structured
from tests.role_process import wait_for

pytestmark = pytest.mark.integration


class Stream:
    """`curl -N` on a watch; its lines as they arrive."""

    def __init__(self, url: str, *args: str) -> None:
        self.process = subprocess.Popen(
            ["curl", "-sS", "-N", *BASIC, *args, url], stdout=subprocess.PIPE
        )
        self.lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def take(self, count: int, timeout: float = 60) -> list[bytes]:
        taken = []
        for _ in range(count):
            try:
                taken.append(self.lines.get(timeout=timeout))
            except queue.Empty:
                raise AssertionError(f"got {len(taken)} of {count} lines: {taken}") from None
        return taken

    def close(self) -> None:
        self.process.kill()
        self.process.wait(10)


@pytest.fixture
def gateway(
    kafka: LocalKafka,
    topic_name: Callable[[str], str],
    tmp_path: Path,
    gateway_process: Callable[[Path], GatewayProcess],
) -> GatewayProcess:
    config = gateway_config(tmp_path / "gw.yaml", kafka.bootstrap_servers, topic_name("webhook"))
    gateway = gateway_process(config)
    # a topic just created answers 503 until its partitions have leaders
    ready = lambda: curl(gateway.url + "/api/v1/range", *BASIC).status == 200  # noqa: E731
    wait_for(ready, 60, "the gateway's topic")
    return gateway


def post(gateway: GatewayProcess, ids: list[str], **changes: Any) -> None:
    batch = json.dumps([structured(i, **changes) for i in ids]).encode()
    answer = curl(
        gateway.url + "/webhook",
        *BASIC,
        "-H", "Content-Type: application/cloudevents-batch+json",
        data=batch,
    )  # fmt: skip
    assert answer.status == 200, answer.body


def partition_of_posts(gateway: GatewayProcess) -> tuple[int, int]:
    """The one partition holding events (all posts share a key) and its end offset."""
    ranges = curl(gateway.url + "/api/v1/range", *BASIC).json()
    used = [p for p in ranges["partitions"] if p["latest"] > 0]  # type: ignore[index]
    assert len(used) == 1, ranges
    return used[0]["partition"], used[0]["latest"]


def test_range_one_event_and_a_read_to_the_end(gateway: GatewayProcess) -> None:
    post(gateway, [f"e{i}" for i in range(5)])
    partition, end = partition_of_posts(gateway)
    assert end == 5
    one = curl(gateway.url + f"/api/v1/events/{partition}/3", *BASIC)
    assert one.status == 200
    assert one.headers["content-type"] == "application/cloudevents+json"
    assert json.loads(one.body)["id"] == "e3"
    assert curl(gateway.url + f"/api/v1/events/{partition}/5", *BASIC).status == 404
    assert curl(gateway.url + "/api/v1/events/99/0", *BASIC).status == 404

    # without watch=true: from the offset to the end as it was, then the answer ends
    read = curl(gateway.url + f"/api/v1/events?partition={partition}&offset=1", *BASIC)
    assert read.status == 200 and read.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in read.body.splitlines()]
    assert [line["event"]["id"] for line in lines] == ["e1", "e2", "e3", "e4"]
    assert [line["offset"] for line in lines] == [1, 2, 3, 4]
    assert lines[0]["event"]["data"] == {"check": "disk", "ok": False}
    bad = curl(gateway.url + "/api/v1/events?offset=-1", *BASIC)
    assert bad.status == 400 and "negative" in bad.body


def test_watch_from_an_offset_sees_later_events_once_and_in_order(
    gateway: GatewayProcess,
) -> None:
    post(gateway, ["old-0", "old-1", "old-2"])
    partition, _ = partition_of_posts(gateway)
    watch = Stream(gateway.url + f"/api/v1/events?watch=true&partition={partition}&offset=2")
    try:
        wait_for(lambda: gateway.metric("vcstream_gateway_active_watches") == 1, 30, "the watch")
        later = [f"new-{i}" for i in range(30)]
        for start in range(0, 30, 10):
            post(gateway, later[start : start + 10])
        lines = [json.loads(line) for line in watch.take(31)]
        assert [line["event"]["id"] for line in lines] == ["old-2", *later]
        assert [line["offset"] for line in lines] == list(range(2, 33))
        assert watch.lines.empty()  # nothing twice
    finally:
        watch.close()
    wait_for(lambda: gateway.metric("vcstream_gateway_active_watches") == 0, 30, "the watch end")


def test_watch_filters_by_type_and_subject_globs(gateway: GatewayProcess) -> None:
    watch = Stream(
        gateway.url + "/api/v1/events?watch=true&from=now&type=com.example.*.v2&subject=vm-*"
    )
    try:
        wait_for(lambda: gateway.metric("vcstream_gateway_active_watches") == 1, 30, "the watch")
        post(gateway, ["a"], type="com.example.check.v2", subject="host-1")
        post(gateway, ["b"], type="com.example.check.v1", subject="vm-1")
        post(gateway, ["c"], type="com.example.check.v2", subject="vm-2")
        assert json.loads(watch.take(1)[0])["event"]["id"] == "c"
    finally:
        watch.close()


def test_sse_watch_resumes_after_last_event_id(gateway: GatewayProcess) -> None:
    post(gateway, ["s0", "s1", "s2"])
    partition, _ = partition_of_posts(gateway)
    url = gateway.url + f"/api/v1/events?watch=true&partition={partition}&offset=0"
    first = Stream(url, "-H", "Accept: text/event-stream")
    try:
        # the start (before offset 0), then id, data, blank per event
        taken = first.take(8)
    finally:
        first.close()
    assert taken[:2] == [f"id: {partition}:-1\n".encode(), b"\n"]
    assert taken[2] == f"id: {partition}:0\n".encode()
    assert json.loads(taken[6].removeprefix(b"data: "))["event"]["id"] == "s1"
    last_id = taken[5].decode().removeprefix("id: ").strip()
    assert last_id == f"{partition}:1"
    post(gateway, ["s3"])
    resumed = Stream(url, "-H", "Accept: text/event-stream", "-H", f"Last-Event-ID: {last_id}")
    try:
        events = sse_messages(resumed, 2)
    finally:
        resumed.close()
    assert [line["event"]["id"] for _, line in events] == ["s2", "s3"]
    assert [event_id for event_id, _ in events] == [f"{partition}:2", f"{partition}:3"]


def test_watches_beyond_the_limit_get_429(gateway: GatewayProcess) -> None:
    watches = [Stream(gateway.url + "/api/v1/events?watch=true") for _ in range(3)]
    try:
        wait_for(lambda: gateway.metric("vcstream_gateway_active_watches") == 3, 30, "3 watches")
        refused = curl(gateway.url + "/api/v1/events?watch=true", *BASIC)
        assert refused.status == 429 and refused.headers["retry-after"] == "7"
    finally:
        for watch in watches:
            watch.close()
    wait_for(lambda: gateway.metric("vcstream_gateway_active_watches") == 0, 30, "the watch end")


def test_sigterm_ends_open_watches_and_exits_0(gateway: GatewayProcess) -> None:
    watch = Stream(gateway.url + "/api/v1/events?watch=true")
    try:
        wait_for(lambda: gateway.metric("vcstream_gateway_active_watches") == 1, 30, "the watch")
        assert gateway.terminate(timeout=30) == 0
        assert watch.process.wait(30) == 0  # the response ended cleanly, not cut
    finally:
        watch.close()


def test_a_time_range_reads_the_events_kafka_stamped_inside_it(gateway: GatewayProcess) -> None:
    def now_ms() -> int:
        return int(time.time() * 1000)

    def rfc3339(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")

    began = now_ms()
    post(gateway, ["early-0", "early-1"])
    # a millisecond after every early event was acknowledged, before any late one exists
    boundary = now_ms() + 1
    wait_for(lambda: now_ms() > boundary, 5, "the clock to pass the boundary")
    post(gateway, ["late-0"])

    def ids(query: str) -> list[str]:
        answer = curl(gateway.url + "/api/v1/events?" + query.replace("+", "%2B"), *BASIC)
        assert answer.status == 200, answer.body
        return [json.loads(line)["event"]["id"] for line in answer.body.splitlines()]

    assert ids(f"time={rfc3339(began)}&until={rfc3339(boundary)}") == ["early-0", "early-1"]
    assert ids(f"time={rfc3339(boundary)}") == ["late-0"]
    bad = curl(gateway.url + "/api/v1/events?watch=true&until=2026-01-01T00:00:00Z", *BASIC)
    assert bad.status == 400 and "until" in bad.body


def test_a_quiet_sse_watch_sends_keepalive_comments(
    kafka: LocalKafka,
    topic_name: Callable[[str], str],
    tmp_path: Path,
    gateway_process: Callable[[Path], GatewayProcess],
) -> None:
    config = gateway_config(
        tmp_path / "gw.yaml",
        kafka.bootstrap_servers,
        topic_name("webhook"),
        extra="    heartbeat: 1s\n",  # under watch:
    )
    gateway = gateway_process(config)
    wait_for(lambda: curl(gateway.url + "/api/v1/range", *BASIC).status == 200, 60, "the topic")
    watch = Stream(
        gateway.url + "/api/v1/events?watch=true&from=now", "-H", "Accept: text/event-stream"
    )
    try:
        head, blank, *keepalive = watch.take(4)  # with no event in the topic
        assert head.startswith(b"id: ") and blank == b"\n"
        assert keepalive == [b": keepalive\n", b"\n"]
    finally:
        watch.close()


def sse_messages(stream: Stream, count: int) -> list[tuple[str | None, dict[str, Any]]]:
    """The next `count` events of an SSE watch as (id, line); id-only messages and
    comments are skipped."""
    messages: list[tuple[str | None, dict[str, Any]]] = []
    event_id, data = None, None
    while len(messages) < count:
        [raw] = stream.take(1)
        text = raw.decode().rstrip("\n")
        if text.startswith("id: "):
            event_id = text.removeprefix("id: ")
        elif text.startswith("data: "):
            data = json.loads(text.removeprefix("data: "))
        elif not text:
            if data is not None:
                messages.append((event_id, data))
            data = None
    return messages


def subjects_on_partitions(gateway: GatewayProcess, count: int) -> list[str]:
    """`count` subjects whose events the gateway's key puts on `count` different
    partitions (found by posting one event for each of a few subjects)."""
    post_subjects = [f"vm-{i}" for i in range(16)]
    for subject in post_subjects:
        post(gateway, [f"probe-{subject}"], subject=subject)
    read = curl(gateway.url + "/api/v1/events?from=earliest", *BASIC)
    by_partition: dict[int, str] = {}
    for text in read.body.splitlines():
        line = json.loads(text)
        by_partition.setdefault(line["partition"], line["event"]["subject"])
    assert len(by_partition) >= count, by_partition
    return [by_partition[p] for p in sorted(by_partition)][:count]


@pytest.mark.parametrize("start", ["from=now", "time=now"])
def test_a_resumed_watch_gets_events_of_partitions_it_had_not_seen_before(
    gateway: GatewayProcess, start: str
) -> None:
    """Last-Event-ID names every partition's position as of the watch's start, so
    events that reach another partition while the client is away are not skipped
    (a resumed `from=now` resolved `now` again for partitions missing from the ID)."""
    seen, unseen = subjects_on_partitions(gateway, 2)
    if start == "time=now":
        start = "time=" + datetime.now(UTC).isoformat(timespec="milliseconds").replace("+", "%2B")
    url = gateway.url + f"/api/v1/events?watch=true&{start}"
    first = Stream(url, "-H", "Accept: text/event-stream")
    try:
        wait_for(lambda: gateway.metric("vcstream_gateway_active_watches") == 1, 30, "the watch")
        post(gateway, ["seen-0"], subject=seen)
        [(last_id, line)] = sse_messages(first, 1)
    finally:
        first.close()
    assert line["event"]["id"] == "seen-0" and last_id is not None
    wait_for(lambda: gateway.metric("vcstream_gateway_active_watches") == 0, 30, "the watch end")
    post(gateway, ["unseen-0"], subject=unseen)  # while no watch is open
    post(gateway, ["seen-1"], subject=seen)
    resumed = Stream(url, "-H", "Accept: text/event-stream", "-H", f"Last-Event-ID: {last_id}")
    try:
        events = sse_messages(resumed, 2)
    finally:
        resumed.close()
    assert sorted(line["event"]["id"] for _, line in events) == ["seen-1", "unseen-0"]


def test_a_watch_dropped_before_its_first_event_resumes_where_it_started(
    gateway: GatewayProcess,
) -> None:
    """An SSE watch's first message is an id alone (its start on every partition): a
    client that reconnects before any event came resumes there, not at a new `now`."""
    [subject] = subjects_on_partitions(gateway, 1)
    url = gateway.url + "/api/v1/events?watch=true&from=now"
    first = Stream(url, "-H", "Accept: text/event-stream")
    try:
        head, blank = first.take(2)
    finally:
        first.close()
    assert head.startswith(b"id: ") and blank == b"\n"
    start_id = head.decode().removeprefix("id: ").strip()
    ranges = curl(gateway.url + "/api/v1/range", *BASIC).json()
    ends = [f"{p['partition']}:{p['latest'] - 1}" for p in ranges["partitions"]]  # type: ignore[index]
    assert start_id == ",".join(ends)  # every partition, at its end when the watch began
    post(gateway, ["while-away"], subject=subject)
    resumed = Stream(url, "-H", "Accept: text/event-stream", "-H", f"Last-Event-ID: {start_id}")
    try:
        [(_, line)] = sse_messages(resumed, 1)
    finally:
        resumed.close()
    assert line["event"]["id"] == "while-away"
