"""The sink runtime itself: backpressure, shutdown while retrying, metrics, settings errors."""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition
from prometheus_client import REGISTRY
from typer.testing import CliRunner

from cli import app
from sinks import metrics, registry, runtime
from sinks.base import Outcome, Sink, SinkEvent
from sinks.delivery import backoff
from sinks.runtime import (
    GC_YOUNG_THRESHOLD,
    ConsumerCalls,
    SinkRunner,
    _Partition,
    bounded_fetch,
    partition_lag,
)
from tests.sinks.helpers import (
    committed,
    ensure_topics_for,
    make_runner,
    produce,
    run_until,
    settled,
    sink_settings,
    vm_records,
)
from tests.sinks.receivers import OK, Fault, Receiver, parse_cloudevent
from vcstream.observability import Health, ObservabilityServer
from vcstream.settings import ConfigError, load_settings
from vcstream.settings.kafka import KafkaSettings
from vcstream.settings.observability import MetricsSettings
from vcstream.settings.sinks import DeliverySettings, SinkCommonSettings


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(parse_cloudevent).start()
    yield server
    server.stop()


@pytest.mark.integration
def test_slow_receiver_pauses_the_partition_instead_of_buffering(kafka, topic_name, receiver):
    topic, dlq = topic_name("events"), topic_name("dlq")
    gate = threading.Event()
    receiver.plan = lambda _n, _body: OK if gate.is_set() else Fault.http(503)
    produce(kafka.bootstrap_servers, topic, vm_records(600))
    settings = sink_settings(
        kafka.bootstrap_servers,
        "knative",
        dlq,
        topics=[topic],
        url=receiver.url,
        delivery={"backoffDelay": "PT0.05S", "backoffPolicy": "linear", "retry": 100},
        batch={"maxRecords": 20, "maxBuffered": 50},
    )
    runner = make_runner("knative", settings)
    peak_held = 0
    paused_seen = False

    def observe() -> bool:
        nonlocal peak_held, paused_seen
        held = sum(len(s.buffer) + len(s.batch) for s in runner._partitions.values())
        peak_held = max(peak_held, held)
        if metrics.PAUSED_PARTITIONS.labels("knative")._value.get() >= 1:
            paused_seen = True
            gate.set()  # the receiver recovers once backpressure has kicked in
        return runner.report.delivered >= 600

    run_until(runner, observe, timeout=90)

    assert paused_seen
    # bounded: what was buffered when the pause took effect plus one fetch, not 600
    assert peak_held <= 50 + 20 * 2 + 100, peak_held
    assert (runner.report.delivered, runner.report.dead_lettered) == (600, 0)
    assert committed(kafka.bootstrap_servers, "vcstream-sink-knative", topic) == 600


@pytest.mark.integration
def test_a_batch_that_cannot_grow_past_the_pause_does_not_wait_out_max_wait(
    kafka, topic_name, receiver
):
    """maxRecords above maxBuffered (the audit sink's defaults were 5,000 and 1,000): the
    partition pauses before a batch fills, so waiting for it to fill only waited out
    maxWait, one batch per partition per maxWait."""
    topic, dlq = topic_name("events"), topic_name("dlq")
    produce(kafka.bootstrap_servers, topic, vm_records(400))
    batch = {"maxRecords": 1000, "maxBuffered": 100, "maxWait": "PT120S"}
    section = {"topics": [topic], "url": receiver.url, "batch": batch}
    runner = make_runner(
        "knative", sink_settings(kafka.bootstrap_servers, "knative", dlq, **section)
    )
    collecting = gc.get_threshold()
    seen: list[tuple[int, int, int]] = []

    def done() -> bool:
        seen.append(gc.get_threshold())
        return settled(runner, 400)()

    run_until(runner, done, timeout=60)  # half of one maxWait
    assert (runner.report.delivered, runner.report.dead_lettered) == (400, 0)
    # the runtime's collector settings held while it ran, and were given back
    assert GC_YOUNG_THRESHOLD in [young for young, _, _ in seen]
    assert (gc.get_threshold(), gc.get_freeze_count()) == (collecting, 0)


@pytest.mark.integration
def test_collector_settings_are_given_back_when_shutdown_raises(kafka, topic_name, receiver):
    """A sink whose close() fails: the error reaches the caller, and the process's
    collector is as it was before the runner ran (threshold, nothing left frozen)."""
    topic, dlq = topic_name("events"), topic_name("dlq")
    produce(kafka.bootstrap_servers, topic, vm_records(10))
    section = {"topics": [topic], "url": receiver.url}
    runner = make_runner(
        "knative", sink_settings(kafka.bootstrap_servers, "knative", dlq, **section)
    )

    async def failing_close() -> None:
        raise OSError("connections would not close")

    runner.sink.close = failing_close  # type: ignore[method-assign]
    collecting = gc.get_threshold()
    seen: list[tuple[int, int, int]] = []

    def done() -> bool:
        seen.append(gc.get_threshold())
        return settled(runner, 10)()

    with pytest.raises(OSError, match="would not close"):
        run_until(runner, done)
    assert GC_YOUNG_THRESHOLD in [young for young, _, _ in seen]
    assert (gc.get_threshold(), gc.get_freeze_count()) == (collecting, 0)


@pytest.mark.integration
def test_sink_stopped_while_retrying_commits_nothing_undelivered(kafka, topic_name, receiver):
    topic, dlq = topic_name("events"), topic_name("dlq")
    receiver.plan = lambda _n, _body: Fault.http(503)
    produce(kafka.bootstrap_servers, topic, vm_records(5, vms=1))
    section: dict[str, Any] = {
        "topics": [topic],
        "url": receiver.url,
        "delivery": {"backoffDelay": "PT10S", "retry": 3},
    }
    settings = sink_settings(kafka.bootstrap_servers, "knative", dlq, **section)
    runner = make_runner("knative", settings)

    run_until(runner, lambda: receiver.requests >= 1)  # stop during the 10 s back-off

    assert runner.report.dead_lettered == 0
    assert committed(kafka.bootstrap_servers, "vcstream-sink-knative", topic) < 0  # nothing
    receiver.plan = lambda _n, _body: OK
    restarted = make_runner("knative", settings)
    run_until(restarted, settled(restarted, 5))
    assert restarted.report.delivered == 5
    assert committed(kafka.bootstrap_servers, "vcstream-sink-knative", topic) == 5


@pytest.mark.integration
def test_metrics_count_delivered_retried_and_dead_lettered(kafka, topic_name, receiver):
    topic, dlq = topic_name("events"), topic_name("dlq")
    receiver.plan = lambda n, _body: {1: Fault.http(503), 3: Fault.http(400)}.get(n, OK)
    produce(kafka.bootstrap_servers, topic, vm_records(4, vms=1))

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, {"sink": "knative", **labels}) or 0.0

    before = {
        "delivered": sample("vcstream_sink_delivered_total"),
        "retried": sample("vcstream_sink_retried_total"),
        "dead": sample("vcstream_sink_dead_lettered_total", reason="delivery"),
        "latency": sample("vcstream_sink_delivery_latency_seconds_count"),
    }
    section = {"topics": [topic], "url": receiver.url, "delivery": {"backoffDelay": "PT0.01S"}}
    runner = make_runner(
        "knative", sink_settings(kafka.bootstrap_servers, "knative", dlq, **section)
    )
    run_until(runner, settled(runner, 4))

    assert sample("vcstream_sink_delivered_total") - before["delivered"] == 3
    assert sample("vcstream_sink_retried_total") - before["retried"] == 1
    assert sample("vcstream_sink_dead_lettered_total", reason="delivery") - before["dead"] == 1
    assert sample("vcstream_sink_delivery_latency_seconds_count") - before["latency"] == 3


def test_backoff_follows_knative_policies():
    exponential = DeliverySettings()  # Knative's defaults: 10 retries, exponential, PT0.2S
    assert (exponential.retry, exponential.backoff_policy) == (10, "exponential")
    assert [backoff(exponential, n) for n in (1, 2, 3)] == [0.2, 0.4, 0.8]
    linear = DeliverySettings(backoffPolicy="linear", backoffDelay="PT0.5S")
    assert [backoff(linear, n) for n in (1, 2, 3)] == [0.5, 1.0, 1.5]


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("sinks: {knative: {url: ftp://x}}", "sinks.knative.url: url must start with http"),
        ("sinks: {audit: {backend: postgres}}", "backend postgres needs a `postgres` section"),
        (
            "sinks: {knative: {url: http://x, delivery: {retries: 3}}}",
            "delivery.retries: unknown key",
        ),
        ("sinks: {knative: {url: http://x, delivery: {backoffDelay: soon}}}", "not a duration"),
        ("sinks: {slack: {webhookUrl: {fromEnv: NO_SUCH_VAR_X}}}", "NO_SUCH_VAR_X is not set"),
    ],
)
def test_bad_sink_configuration_names_the_key(tmp_path, yaml_text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(path)


def test_sink_command_exits_2_when_the_sink_is_not_configured(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("metrics: {enabled: false}\n")
    result = CliRunner().invoke(app, ["sink", "knative", "--config", str(path)])
    assert result.exit_code == 2
    assert "sinks.knative is not configured" in result.output


@pytest.mark.integration
def test_rebalance_to_a_second_member_loses_nothing(kafka, topic_name, receiver):
    topic, dlq = topic_name("events"), topic_name("dlq")
    produce(kafka.bootstrap_servers, topic, vm_records(400, vms=40), partitions=4)
    slow = Fault("status", 202, delay=0.2)
    receiver.plan = lambda _n, _body: slow  # about 8 s alone: time for a second member
    section = {
        "topics": [topic],
        "url": receiver.url,
        "batch": {"maxRecords": 10, "maxInFlight": 1},
        "delivery": {"backoffDelay": "PT0.01S"},
    }
    settings = sink_settings(kafka.bootstrap_servers, "knative", dlq, **section)
    first, second = make_runner("knative", settings), make_runner("knative", settings)
    unique = lambda: len({e.get_id() for e in receiver.accepted})  # noqa: E731
    joined = threading.Event()
    member = threading.Thread(
        target=lambda: run_until(second, lambda: unique() >= 400, timeout=90), daemon=True
    )

    def start_second_midway() -> bool:
        if first.report.delivered >= 40 and not joined.is_set():
            joined.set()
            member.start()
        return unique() >= 400

    run_until(first, start_second_midway, timeout=90)
    member.join(60)

    assert joined.is_set()
    assert second.report.delivered > 0  # the second member really took partitions over
    assert unique() == 400  # at least once: a re-delivery is allowed, a loss is not


@pytest.mark.integration
def test_lag_counts_the_whole_backlog_during_a_receiver_outage_before_any_commit(
    kafka, topic_name, receiver
):
    topic, dlq = topic_name("events"), topic_name("dlq")
    outage = threading.Event()
    outage.set()
    receiver.plan = lambda _n, _body: Fault.http(503) if outage.is_set() else OK
    produce(kafka.bootstrap_servers, topic, vm_records(50, vms=5), partitions=2)
    section = {
        "topics": [topic],
        "url": receiver.url,
        "delivery": {"backoffDelay": "PT0.05S", "backoffPolicy": "linear", "retry": 10000},
    }
    runner = make_runner(
        "knative", sink_settings(kafka.bootstrap_servers, "knative", dlq, **section)
    )

    def lag() -> float:
        return (
            REGISTRY.get_sample_value("vcstream_sink_consumer_lag_records", {"sink": "knative"})
            or 0.0
        )

    lag_seen_in_outage: list[float] = []

    def observe() -> bool:
        if outage.is_set() and receiver.requests > 0 and lag() == 50:
            # the new group has committed nothing: librdkafka says -1, the backlog is 50
            lag_seen_in_outage.append(lag())
            outage.clear()  # the receiver comes back
        return bool(lag_seen_in_outage) and runner.report.delivered == 50 and lag() == 0

    run_until(runner, observe, timeout=90)

    assert lag_seen_in_outage == [50]
    assert (runner.report.delivered, runner.report.dead_lettered) == (50, 0)
    group = "vcstream-sink-knative"
    assert sum(committed(kafka.bootstrap_servers, group, topic, p) for p in (0, 1)) == 50


@pytest.mark.integration
def test_receiver_outage_degrades_readiness_while_liveness_stays_ok(kafka, topic_name, receiver):
    topic, dlq = topic_name("events"), topic_name("dlq")
    outage = threading.Event()
    outage.set()
    receiver.plan = lambda _n, _body: Fault.http(503) if outage.is_set() else OK
    produce(kafka.bootstrap_servers, topic, vm_records(20, vms=2))
    section = {
        "topics": [topic],
        "url": receiver.url,
        "delivery": {"backoffDelay": "PT0.05S", "backoffPolicy": "linear", "retry": 10000},
    }
    settings = sink_settings(kafka.bootstrap_servers, "knative", dlq, **section)
    ensure_topics_for(kafka.bootstrap_servers, [dlq])
    health = Health()
    runner = SinkRunner(
        registry.create_sink("knative", settings),
        settings.kafka,
        topics=[topic],
        group_id="vcstream-sink-knative",
        dead_letter_topic=dlq,
        health=health,
    )
    server = ObservabilityServer(MetricsSettings(host="127.0.0.1", port=0), health).start()
    during: dict[str, tuple[int, dict[str, Any]]] = {}

    def observe() -> bool:
        if outage.is_set() and receiver.requests >= 3:
            ready, live = http_get(server.port, "/readyz"), http_get(server.port, "/livez")
            if ready[0] == 503:
                during.update(ready=ready, live=live)
                outage.clear()
        return (
            bool(during)
            and runner.report.delivered == 20
            and http_get(server.port, "/readyz")[0] == 200
        )

    try:
        run_until(runner, observe, timeout=90)
    finally:
        server.stop()

    status, body = during["ready"]
    assert (status, body["status"]) == (503, "degraded")
    assert body["checks"]["sink:knative"].startswith("retrying: target answered HTTP 503")
    assert during["live"] == (200, {"status": "ok", "checks": {"loop": "ok"}})  # no restart
    assert (runner.report.delivered, runner.report.dead_lettered) == (20, 0)  # lost: none


def http_get(port: int, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


@pytest.mark.parametrize(
    ("stats", "lag"),
    [
        ({"consumer_lag": 7, "committed_offset": 3, "hi_offset": 10, "lo_offset": 0}, 7),
        # no commit yet: from the log start to the last stable offset
        ({"consumer_lag": -1, "committed_offset": -1001, "ls_offset": 12, "lo_offset": 2}, 10),
        ({"consumer_lag": -1, "committed_offset": -1001, "hi_offset": 5, "lo_offset": 0}, 5),
        # the log start not known yet: nothing said rather than a guess
        ({"consumer_lag": -1, "committed_offset": -1001, "hi_offset": 5, "lo_offset": -1}, 0),
    ],
)
def test_partition_lag_from_librdkafka_statistics(stats, lag):
    assert partition_lag(stats) == lag


def test_sink_consumer_prefetch_is_bounded_unless_the_user_says_otherwise():
    from vcstream.settings.kafka import KafkaSettings

    default = bounded_fetch(KafkaSettings(bootstrapServers="k:9092"))
    assert int(default["queued.max.messages.kbytes"]) <= 8192  # librdkafka's: 65536
    assert int(default["fetch.max.bytes"]) <= 4 * 1024 * 1024  # librdkafka's: 52428800
    assert int(default["fetch.queue.backoff.ms"]) <= 50  # librdkafka's 1000 ms stalls
    # a fetch answered per record was a wake-up per record at a trickle; waiting longer
    # than this would eat the Knative sink's latency goal (p99 100 ms at 2,000/s)
    assert int(default["fetch.min.bytes"]) > 1 and int(default["fetch.wait.max.ms"]) <= 25

    chosen = KafkaSettings(
        bootstrapServers="k:9092", clientProperties={"fetch.max.bytes": "8000000"}
    )
    assert bounded_fetch(chosen)["fetch.max.bytes"] == "8000000"


@pytest.mark.integration
def test_a_position_kafka_holds_already_is_not_committed_again(kafka, topic_name, tmp_path):
    """The audit sink's files commit when they rotate: every batch before that settles
    the position committed already, and sending it again was a broker round trip per
    batch. Each position goes once; the last one still reaches Kafka."""
    topic, dlq = topic_name("events"), topic_name("dlq")
    produce(kafka.bootstrap_servers, topic, vm_records(200))
    section = {
        "topics": [topic],
        "files": {"directory": str(tmp_path / "audit")},
        "batch": {"maxRecords": 20, "maxBuffered": 40, "maxWait": "PT0S"},
    }
    runner = make_runner("audit", sink_settings(kafka.bootstrap_servers, "audit", dlq, **section))
    sent: list[tuple[int, str | None]] = []
    take = runner._commit_offsets

    def recording() -> list[Any]:
        offsets = take()
        sent.extend((tp.offset, tp.metadata) for tp in offsets)
        return offsets

    runner._commit_offsets = recording  # type: ignore[method-assign]
    batches: list[int] = []
    deliver = runner._delivery.deliver

    async def counting(records: Any, read_at: float | None = None) -> Any:
        batches.append(len(records))
        return await deliver(records, read_at)

    runner._delivery.deliver = counting  # type: ignore[method-assign]
    run_until(runner, settled(runner, 200))

    assert len(batches) >= 5  # else this proves nothing
    assert len(sent) == len(set(sent)), sent
    assert sent[-1][0] == 200  # the files rotated on shutdown: all of it committed
    assert committed(kafka.bootstrap_servers, "vcstream-sink-audit", topic) == 200


def _noted(name: str) -> Callable[..., Any]:
    """`Consumer.<name>`, noting the calling thread while it runs."""
    method = getattr(Consumer, name)

    def call(self: _CallsInProgress, *args: Any, **kwargs: Any) -> Any:
        thread = threading.get_ident()
        self.inside.add(thread)
        self.most_threads = max(self.most_threads, len(self.inside))
        self.calls[name] = self.calls.get(name, 0) + 1
        try:
            return method(self, *args, **kwargs)
        finally:
            self.inside.discard(thread)

    return call


class _CallsInProgress(Consumer):
    """A consumer that notes which threads are inside its calls at once. confluent-kafka
    serialises calls across threads: one waits for another's fetch (its poll timeout)
    or commit (a broker round trip), polling in 1 ms sleeps."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.inside: set[int] = set()
        self.most_threads = 0
        self.calls: dict[str, int] = {}

    consume = _noted("consume")
    commit = _noted("commit")
    pause = _noted("pause")
    resume = _noted("resume")


@pytest.mark.integration
def test_the_consumer_is_called_from_one_thread_at_a_time(kafka, topic_name, receiver, monkeypatch):
    """Commits, pauses and resumes are made by the fetching thread between fetches: a
    commit beside a fetch waited out the fetch's poll, the next fetch waited out the
    commit's round trip, and a pause from the loop froze the loop as long."""
    topic, dlq = topic_name("events"), topic_name("dlq")
    produce(kafka.bootstrap_servers, topic, vm_records(600))
    receiver.plan = lambda _n, _body: Fault("status", 202, delay=0.002)  # backpressure
    section = {
        "topics": [topic],
        "url": receiver.url,
        "concurrency": 2,
        "batch": {"maxRecords": 20, "maxBuffered": 50},
    }
    monkeypatch.setattr(runtime, "Consumer", _CallsInProgress)
    runner = make_runner(
        "knative", sink_settings(kafka.bootstrap_servers, "knative", dlq, **section)
    )
    consumer = runner._consumer
    assert isinstance(consumer, _CallsInProgress)

    run_until(runner, settled(runner, 600), timeout=90)

    assert (runner.report.delivered, runner.report.dead_lettered) == (600, 0)
    # else this proves nothing: commits and pauses happened while fetches went on
    assert consumer.calls.get("pause", 0) >= 1 and consumer.calls.get("commit", 0) >= 2
    assert consumer.most_threads == 1, consumer.calls
    assert committed(kafka.bootstrap_servers, "vcstream-sink-knative", topic) == 600


def test_a_commit_kafka_refused_is_sent_again_when_its_partition_settles_again():
    """A position handed to the fetching thread is not handed again (the audit sink
    settles one position batch after batch); the commit's answer comes to `_on_commit`
    in the consumer's thread, and a refused position is forgotten (on the loop), so the
    next time its partition settles it is sent again, even the same position."""
    settings = sink_settings("127.0.0.1:9", "knative", "dlq", url="http://127.0.0.1:9/")
    runner = SinkRunner(
        registry.create_sink("knative", settings),
        settings.kafka,
        topics=["events"],
        group_id="unused",
        dead_letter_topic="dlq",
    )
    key = ("events", 0)
    runner._partitions[key] = _Partition()

    def settle_at(offset: int) -> list[tuple[str, int, int]]:
        runner._to_commit[key] = TopicPartition(*key, offset)
        runner._committed_at = 0.0  # the commit interval is over
        runner._settle_finished()
        handed, runner._calls = runner._calls, ConsumerCalls()  # as a fetch takes them
        return [(tp.topic, tp.partition, tp.offset) for tp in handed.commit]

    async def main() -> None:
        runner._loop = asyncio.get_running_loop()
        assert settle_at(10) == [("events", 0, 10)]
        assert settle_at(10) == []  # sent already
        refused = TopicPartition(*key, 10)
        await asyncio.to_thread(
            runner._on_commit, KafkaError(KafkaError.REBALANCE_IN_PROGRESS), [refused]
        )
        # no wait needed: `_on_commit` handed `_forget_committed` to the loop before
        # returning, and the loop runs it before the to_thread's result resumes this
        assert settle_at(10) == [("events", 0, 10)]

    try:
        asyncio.run(main())
    finally:
        runner._consumer.close()


class _Batches(Sink):
    """Notes each batch's offsets; `hold`, if set, runs inside `deliver` without awaiting
    (a batch's CPU, as the audit sink's encoding holds the loop)."""

    kind: ClassVar[str] = "batches"

    def __init__(self, topic: str, hold: Callable[[Sequence[SinkEvent]], None] | None = None,
                 **batch: Any) -> None:  # fmt: skip
        super().__init__(SinkCommonSettings(topics=[topic], batch=batch))
        self.hold = hold
        self.batches: list[list[int]] = []

    async def deliver(self, batch: Sequence[SinkEvent]) -> Sequence[Outcome]:
        if self.hold is not None:
            self.hold(batch)
        self.batches.append([item.record.offset or 0 for item in batch])
        return [None] * len(batch)


def _runner(kafka: Any, sink: Sink, topic: str) -> SinkRunner:
    ensure_topics_for(kafka.bootstrap_servers, [f"{topic}.dlq"])
    return SinkRunner(
        sink,
        KafkaSettings(bootstrapServers=kafka.bootstrap_servers),
        topics=[topic],
        group_id=f"{topic}-group",
        dead_letter_topic=f"{topic}.dlq",
    )


class _FetchesNoted(Consumer):
    """A consumer that numbers its `consume` calls and notes which call returned each
    offset."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.started = 0
        self.returned_by: dict[int, int] = {}
        self.changed = threading.Condition()

    def consume(self, *args: Any, **kwargs: Any) -> list[Any]:
        with self.changed:
            self.started += 1
            call = self.started
            self.changed.notify_all()
        messages: list[Any] = super().consume(*args, **kwargs)
        for message in messages:
            if message.error() is None:
                self.returned_by[message.offset()] = call
        return messages


@pytest.mark.integration
def test_the_next_fetch_is_made_while_a_batch_is_delivered(kafka, topic_name, monkeypatch):
    """A batch holds the loop for its CPU (the audit sink encodes in the loop's thread):
    the next fetch must already be in the fetching thread's hands by then, not wait for
    the batch to finish (the audit sink fetched and delivered in turn, never at once).
    Each batch here holds the loop until a fetch after its own has begun, or 10 s."""
    topic = topic_name("events")
    produce(kafka.bootstrap_servers, topic, vm_records(300))
    monkeypatch.setattr(runtime, "Consumer", _FetchesNoted)
    overlapped: list[bool] = []

    def hold(batch: Sequence[SinkEvent]) -> None:
        consumer = runner._consumer
        assert isinstance(consumer, _FetchesNoted)
        # the last call that returned a record of this batch (a fetch makes two calls
        # when it need not wait: one record, then what else is queued)
        fetched_by = max(consumer.returned_by[item.record.offset or 0] for item in batch)
        with consumer.changed:
            overlapped.append(
                consumer.changed.wait_for(lambda: consumer.started > fetched_by, timeout=10)
            )

    sink = _Batches(topic, hold, maxRecords=50, maxBuffered=100)
    runner = _runner(kafka, sink, topic)

    run_until(runner, settled(runner, 300), timeout=90)

    assert len(overlapped) >= 6, sink.batches  # else this proves nothing
    assert all(overlapped), overlapped
    assert sorted(o for batch in sink.batches for o in batch) == list(range(300))


@pytest.mark.integration
def test_the_rest_of_a_backlog_does_not_wait_out_max_wait(kafka, topic_name):
    """Full batches through a backlog, then its last, short one: the consumer has no
    more queued to fill it with, so it goes at once, not after maxWait (here 120 s:
    the run gives up at 60)."""
    topic = topic_name("events")
    produce(kafka.bootstrap_servers, topic, vm_records(2_500))
    sink = _Batches(topic, maxRecords=1000, maxBuffered=2000, maxWait="PT120S")
    runner = _runner(kafka, sink, topic)

    run_until(runner, settled(runner, 2_500), timeout=60)

    assert 1000 in [len(batch) for batch in sink.batches]  # else this proves nothing
    assert sorted(o for batch in sink.batches for o in batch) == list(range(2_500))


@pytest.mark.integration
def test_a_backlog_that_pauses_and_goes_on_does_not_wait_out_max_wait(kafka, topic_name):
    """A backlog whose records stop coming for a moment (a short fetch amid it) and then
    come again: its rest, after a partial batch, still goes once the consumer is
    drained, not after maxWait (120 s; the run gives up at 60)."""
    topic = topic_name("events")
    records = vm_records(2_200)
    produce(kafka.bootstrap_servers, topic, records[:1_500])
    sink = _Batches(topic, maxRecords=1000, maxBuffered=2000, maxWait="PT120S")
    runner = _runner(kafka, sink, topic)
    resumed = False

    def resume_then_settle() -> bool:
        nonlocal resumed
        if not resumed and runner.report.delivered >= 1_500:  # the first part, all of it
            produce(kafka.bootstrap_servers, topic, records[1_500:])
            resumed = True
        return settled(runner, 2_200)()

    run_until(runner, resume_then_settle, timeout=60)

    assert 1000 in [len(batch) for batch in sink.batches]  # else this proves nothing
    assert sorted(o for batch in sink.batches for o in batch) == list(range(2_200))


@pytest.mark.integration
def test_a_trickle_still_waits_to_fill_its_batch(kafka, topic_name):
    """Records that come a few at a time are never a full batch: a fetch that comes back
    short does not deliver them, they wait for maxWait (or the batch to fill)."""
    topic = topic_name("events")
    ensure_topics_for(kafka.bootstrap_servers, [topic])
    sink = _Batches(topic, maxRecords=1000, maxWait="PT120S")
    runner = _runner(kafka, sink, topic)
    fetches = 0
    fetch = runner._fetch

    def counting(calls: ConsumerCalls) -> list[Any]:
        nonlocal fetches
        messages = fetch(calls)
        fetches += 1
        return messages

    runner._fetch = counting  # type: ignore[method-assign]
    records = vm_records(30)
    sent = 0
    seen: dict[str, Any] = {}  # what the runner held once all 30 were buffered

    def buffered() -> int:
        return sum(len(state.buffer) for state in runner._partitions.values())

    def trickle() -> bool:
        nonlocal sent
        if "done" in seen:  # (asked again after the run, which forgets its buffers)
            return True
        if buffered() >= sent and sent < len(records):  # the last 10 fetched: 10 more
            produce(kafka.bootstrap_servers, topic, records[sent : sent + 10])
            sent += 10
        elif buffered() == len(records):
            # two more short fetches, each a chance to deliver them too soon
            seen.setdefault("at", fetches)
            if fetches >= seen["at"] + 2:
                seen.update(done=True, buffered=buffered(), drained=runner._drained)
                return True
        return False

    run_until(runner, trickle, timeout=60)

    assert seen["drained"]  # else this proves nothing
    assert sink.batches == []
    assert seen["buffered"] == 30
