"""An event is finished only once Kafka acknowledged every record made from it."""

from __future__ import annotations

import asyncio

from streams.acks import Pending
from streams.delivery import Deliveries


def run(scenario):
    async def main():
        finished: list[str] = []
        failures: list[BaseException] = []
        deliveries = Deliveries(lambda source, _: finished.append(source.source), failures.append)
        loop = asyncio.get_running_loop()
        await scenario(deliveries, loop.create_future, finished, failures)

    asyncio.run(main())


def pending(name: str) -> Pending:
    return Pending(name, generation=1)


def test_event_finishes_when_all_its_records_are_acknowledged_oldest_first():
    async def scenario(deliveries, future, finished, failures):
        a1, a2, b1 = future(), future(), future()
        deliveries.add(pending("a"), [a1, a2], 0.0)
        deliveries.add(pending("b"), [b1], 0.0)
        a1.set_result(None)
        b1.set_result(None)
        deliveries.settle()
        assert finished == []  # a still has a record on its way; b waits behind it
        a2.set_result(None)
        deliveries.settle()
        assert finished == ["a", "b"]
        assert len(deliveries) == 0 and failures == []

    run(scenario)


def test_event_without_outputs_finishes_at_once_unless_others_are_before_it():
    async def scenario(deliveries, future, finished, failures):
        deliveries.add(pending("dropped"), [], 0.0)
        assert finished == ["dropped"]
        first = future()
        deliveries.add(pending("sent"), [first], 0.0)
        deliveries.add(pending("dropped too"), [], 0.0)
        deliveries.settle()
        assert finished == ["dropped"]
        first.set_result(None)
        deliveries.settle()
        assert finished == ["dropped", "sent", "dropped too"]

    run(scenario)


def test_failed_write_is_reported_once_and_its_event_never_finishes():
    async def scenario(deliveries, future, finished, failures):
        failed, cancelled, fine = future(), future(), future()
        deliveries.add(pending("failed"), [failed], 0.0)
        deliveries.add(pending("cancelled"), [cancelled], 0.0)
        deliveries.add(pending("fine"), [fine], 0.0)
        failed.set_exception(OSError("broker gone"))
        cancelled.cancel()
        fine.set_result(None)
        deliveries.settle()
        assert [type(error) for error in failures] == [OSError]
        assert finished == ["fine"]  # delivered: its own partition's acks stay in order

    run(scenario)
