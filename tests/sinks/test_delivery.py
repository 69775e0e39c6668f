"""BatchDelivery's accounting, with small in-process connectors (no Kafka needed: the
dead letters are collected in memory; the integration tests cover the real topic)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, ClassVar

import pytest

from schemas import InvalidRecord, decode
from schemas.deadletter import error_context
from schemas.record import KafkaRecord
from sinks.base import HELD, DeliveryError, KeyPool, Outcome, Sink, SinkEvent, deliver_per_key
from sinks.delivery import BatchDelivery, type_matcher
from sinks.slack import SlackSink
from tests.sinks.helpers import vm_records
from vcstream.settings.sinks import SinkCommonSettings, SlackSinkSettings

Script = Callable[[int, Sequence[SinkEvent]], Sequence[Outcome]]


class ScriptedSink(Sink):
    kind: ClassVar[str] = "scripted"

    def __init__(self, script: Script, **settings: Any) -> None:
        settings.setdefault("delivery", {"backoffDelay": "PT0.001S", "retry": 2})
        super().__init__(SinkCommonSettings(**settings))
        self.script = script
        self.calls: list[list[int]] = []

    async def deliver(self, batch: Sequence[SinkEvent]) -> Sequence[Outcome]:
        self.calls.append([item.record.offset or 0 for item in batch])
        return self.script(len(self.calls), batch)


class Collected:
    def __init__(self) -> None:
        self.records: list[KafkaRecord] = []

    def send(self, record: KafkaRecord) -> None:
        self.records.append(record)

    async def flush(self) -> None:
        return None


def located(count: int, vms: int = 4) -> list[KafkaRecord]:
    return [
        KafkaRecord(r.value, r.key, r.headers, "t", 0, offset)
        for offset, r in enumerate(vm_records(count, vms=vms))
    ]


def run(sink: Sink, records: list[KafkaRecord]) -> tuple[Any, Collected]:
    dead = Collected()
    report = asyncio.run(BatchDelivery(sink, dead).deliver(records))
    return report, dead


def test_a_partly_failed_batch_retries_only_the_failed_events():
    boom = DeliveryError("503", retryable=True, status=503)
    sink = ScriptedSink(
        lambda call, batch: [boom if call == 1 and i == 1 else None for i, _ in enumerate(batch)]
    )

    report, _ = run(sink, located(4))

    assert sink.calls == [[0, 1, 2, 3], [1]]
    assert (report.delivered, report.retried, report.dead_lettered) == (4, 1, 0)


def test_held_events_do_not_spend_retries_after_a_dead_letter():
    bad = DeliveryError("400", retryable=False, status=400)
    sink = ScriptedSink(lambda call, batch: [bad, HELD] if call == 1 else [None] * len(batch))

    report, dead = run(sink, located(2, vms=1))

    assert sink.calls == [[0, 1], [1]]
    assert (report.delivered, report.dead_lettered, report.retried) == (1, 1, 0)
    assert error_context(dead.records[0])["attempts"] == "1"


def test_a_connector_holding_everything_is_dead_lettered_not_spun():
    sink = ScriptedSink(lambda _call, batch: [HELD] * len(batch))

    report, dead = run(sink, located(3))

    assert len(sink.calls) == 3  # first attempt + retry 2
    assert report.dead_lettered == 3
    assert {error_context(r)["attempts"] for r in dead.records} == {"3"}


def test_a_connector_exception_fails_the_whole_batch_and_is_retried():
    def script(call: int, batch: Sequence[SinkEvent]) -> Sequence[Outcome]:
        if call == 1:
            raise ConnectionResetError("peer reset")
        return [None] * len(batch)

    report, _ = run(ScriptedSink(script), located(3))

    assert (report.delivered, report.retried, report.dead_lettered) == (3, 3, 0)


def test_a_connector_returning_too_few_outcomes_is_an_error():
    with pytest.raises(RuntimeError, match="returned 1 outcomes for 3 events"):
        run(ScriptedSink(lambda _call, _batch: [None]), located(3))


def test_slack_storm_counts_each_alarm_once_across_retries():
    settings = SlackSinkSettings(webhookUrl="http://127.0.0.1:9/hook", storm={"threshold": 3})
    sink = SlackSink(settings)
    batch = [SinkEvent(decode(r), r) for r in located(2)]

    assert not sink._in_storm(batch)
    assert not sink._in_storm(batch)  # the same two alarms, retried: still two
    more = [SinkEvent(decode(r), r) for r in located(4)[2:]]
    assert sink._in_storm(more)  # four distinct alarms > 3


class ViewSink(ScriptedSink):
    """A connector that reads records' bytes: the runtime checks them, decodes none."""

    decodes: ClassVar[bool] = False


def test_a_bytes_connector_gets_checked_records_and_poison_is_dead_lettered():
    seen: list[SinkEvent] = []

    def script(_call: int, batch: Sequence[SinkEvent]) -> Sequence[Outcome]:
        seen.extend(batch)
        return [None] * len(batch)

    good = located(2)
    poison = KafkaRecord(b"{}", b"k", [("ce_id", b"1")], "t", 0, 2)
    bad_time = KafkaRecord(
        good[0].value,
        good[0].key,
        [(k, b"soon" if k == "ce_time" else v) for k, v in good[0].headers],
        "t",
        0,
        3,
    )

    report, dead = run(ViewSink(script), [*good, poison, bad_time])

    assert (report.delivered, report.dead_lettered) == (2, 2)
    assert [error_context(r)["reason"] for r in dead.records] == ["poison", "poison"]
    assert all(item._event is None for item in seen)  # never decoded on the way
    assert [item.type for item in seen] == [decode(r).get_type() for r in good]


def test_a_sink_event_decodes_lazily_and_a_bad_record_raises_on_first_use():
    bad = KafkaRecord(b"{}", b"k", [("ce_id", b"1")])
    item = SinkEvent(None, bad)
    with pytest.raises(InvalidRecord, match="missing header"):
        _ = item.event
    good = located(1)[0]
    assert SinkEvent(None, good).event.get_id() == decode(good).get_id()


def test_deliver_per_key_keeps_key_order_with_few_workers_and_holds_after_a_failure():
    records = located(12, vms=4)
    batch = [SinkEvent(None, r) for r in records]
    order: list[int] = []
    failing = records[5].offset  # key vm-1: its later events are held

    async def deliver_one(item: SinkEvent) -> None:
        await asyncio.sleep(0.001 * (item.record.offset or 0) % 3)
        order.append(item.record.offset or 0)
        if item.record.offset == failing:
            raise ConnectionResetError("peer reset")

    outcomes = asyncio.run(deliver_per_key(batch, deliver_one, concurrency=2))

    for key in {r.key for r in records}:
        offsets = [r.offset for r in records if r.key == key]
        assert [o for o in order if o in offsets] == offsets[
            : len([o for o in order if o in offsets])
        ]
    assert isinstance(outcomes[5], DeliveryError) and outcomes[5].retryable
    assert outcomes[9] is HELD  # same key, after the failure: not tried
    assert 9 not in order
    assert [o for i, o in enumerate(outcomes) if i not in (5, 9)] == [None] * 10


def test_one_key_pool_bounds_every_batch_together_and_keeps_each_keys_order():
    records = located(40, vms=8)
    halves = [records[:20], records[20:]]  # two partitions' batches at once
    in_flight, peak, order = 0, 0, []

    async def deliver_one(item: SinkEvent) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.001)
        order.append(item.record.offset)
        in_flight -= 1

    async def both() -> list[list[Outcome]]:
        pool = KeyPool(3)
        try:
            return await asyncio.gather(
                *(pool.deliver([SinkEvent(None, r) for r in half], deliver_one) for half in halves)
            )
        finally:
            await pool.close()

    outcomes = asyncio.run(both())

    assert outcomes == [[None] * 20, [None] * 20]
    assert peak == 3  # not 3 per batch
    for key in {r.key for r in records}:
        offsets = [r.offset for r in records if r.key == key]
        assert [o for o in order if o in offsets] == offsets


def test_a_cancelled_batch_stops_and_the_pool_goes_on_with_the_others():
    stuck = located(6, vms=3)
    other = [replace(r, offset=100 + n) for n, r in enumerate(located(4, vms=2))]
    tried: list[int | None] = []
    stuck_offsets = {r.offset for r in stuck}

    async def run() -> list[Outcome]:
        both_stuck = asyncio.Event()

        async def deliver_one(item: SinkEvent) -> None:
            tried.append(item.record.offset)
            if item.record.offset in stuck_offsets:
                if sum(o in stuck_offsets for o in tried) == 2:
                    both_stuck.set()
                await asyncio.sleep(60)  # a target that does not answer

        pool = KeyPool(2)
        first = asyncio.create_task(pool.deliver([SinkEvent(None, r) for r in stuck], deliver_one))
        await asyncio.wait_for(both_stuck.wait(), 5)  # both workers hang on its first keys
        later = asyncio.create_task(pool.deliver([SinkEvent(None, r) for r in other], deliver_one))
        await asyncio.sleep(0)  # its chains queue behind the stuck ones
        assert not any(o in {r.offset for r in other} for o in tried)
        first.cancel()
        outcomes = await asyncio.wait_for(later, 5)
        with pytest.raises(asyncio.CancelledError):
            await first
        await pool.close()
        return outcomes

    assert asyncio.run(run()) == [None] * 4
    # the stuck batch's third key was never begun, and the other batch was delivered
    assert [o for o in tried if o in {r.offset for r in stuck}] == [
        stuck[0].offset,
        stuck[1].offset,
    ]
    assert sorted(o or 0 for o in tried if o not in {r.offset for r in stuck}) == [
        r.offset for r in other
    ]


@pytest.mark.parametrize("amount", [0.0, 0.004, 0.005, 0.3, 7.0, 1000.0])
def test_observing_a_batch_s_latency_at_once_gives_the_samples_of_one_observe_per_event(
    amount: float,
) -> None:
    """`observe_many` leans on prometheus_client's histogram internals: the samples
    must be those of `observe` called once per event (else a release changed them)."""
    from prometheus_client import Histogram

    from sinks.metrics import observe_many

    buckets = (0.005, 0.01, 0.5, 1, 10)
    one_by_one = Histogram("one", "one by one", ["sink"], buckets=buckets, registry=None)
    at_once = Histogram("one", "one by one", ["sink"], buckets=buckets, registry=None)
    for _ in range(7):
        one_by_one.labels("s").observe(amount)
    observe_many(at_once.labels("s"), amount, 7)
    observe_many(at_once.labels("s"), amount, 0)  # an attempt that delivered nothing
    assert samples(at_once) == pytest.approx(samples(one_by_one))  # a sum of 7 vs 7 times


def samples(histogram: Any) -> dict[tuple[str, str], float]:
    """(name, le) → value, but the time the child was created."""
    return {
        (sample.name, sample.labels.get("le", "")): sample.value
        for metric in histogram.collect()
        for sample in metric.samples
        if not sample.name.endswith("_created")
    }


def test_observing_a_batch_without_the_histogram_internals_observes_one_by_one() -> None:
    from sinks.metrics import observe_many

    class Plain:
        seen: list[float] = []

        def observe(self, amount: float) -> None:
            self.seen.append(amount)

    child = Plain()
    observe_many(child, 0.25, 3)
    assert child.seen == [0.25, 0.25, 0.25]


def test_types_are_looked_up_per_event_only_when_a_glob_can_refuse_one():
    """`*` among the globs matches every type, an empty one too: nothing to look up."""
    everything = ScriptedSink(lambda _call, batch: [None] * len(batch), types=["x.*", "*"])
    delivery = BatchDelivery(everything, Collected())

    report = asyncio.run(delivery.deliver(located(3)))

    assert (report.delivered, report.filtered) == (3, 0)
    assert delivery._wanted == {}  # no type was looked up
    assert type_matcher(["*"]).fullmatch("") is not None  # so the shortcut is exact

    others = ScriptedSink(lambda _call, batch: [None] * len(batch), types=["x.*"])
    delivery = BatchDelivery(others, Collected())

    report = asyncio.run(delivery.deliver(located(3)))

    assert (report.delivered, report.filtered) == (0, 3)
    assert list(delivery._wanted.values()) == [False]
