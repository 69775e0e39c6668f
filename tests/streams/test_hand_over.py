"""The worker's consumer hands each fetched record to the streams without mode's four
tasks per record (streams.transport `Consumer.wait_first`), and keeps Faust's race:
a hand-over that has to wait still gives way when flow is suspended."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from faust.transport.consumer import Consumer as FaustConsumer

from streams import transport
from streams.transport import Consumer, broker_urls

# `Consumer._drain_messages` of faust-streaming 0.15.3, the loop whose per-record call
# the override takes: a Faust upgrade that changes it must be read again
DRAIN_MESSAGES_SHA256 = "44a2500309e83c630493f6828af50166ec8d96a0b3e4fb2bab735f704ae93417"


def drain_source() -> str:
    return inspect.getsource(FaustConsumer._drain_messages)


def test_faust_fetch_loop_is_the_one_the_override_was_written_for() -> None:
    source = drain_source()
    assert "callback(message), self.suspend_flow.wait()" in source
    assert hashlib.sha256(source.encode()).hexdigest() == DRAIN_MESSAGES_SHA256, (
        "faust's Consumer._drain_messages changed: check streams.transport's wait_first"
    )


def with_consumer(scenario: Callable[[Consumer], Awaitable[None]]) -> None:
    async def main() -> None:
        app = transport.App(
            "hand-over-test",
            broker=broker_urls("kafka://127.0.0.1:9"),  # never connected
            store="memory://",
            web_enabled=False,
            autodiscover=False,
        )
        consumer = app.consumer
        assert isinstance(consumer, Consumer)
        await scenario(consumer)

    asyncio.run(main())


def test_a_hand_over_that_does_not_wait_runs_in_the_fetch_loop_itself() -> None:
    async def scenario(consumer: Consumer) -> None:
        ran_in: list[Any] = []

        async def hand_over() -> str:
            ran_in.append(asyncio.current_task())
            return "queued"

        suspended = consumer.suspend_flow.wait()
        done, results, stopped = await consumer.wait_first(hand_over(), suspended)
        assert ran_in == [asyncio.current_task()]  # mode's wait_first: a task of its own
        assert results == ["queued"] and len(done) == 1 and not stopped
        assert inspect.getcoroutinestate(suspended) == inspect.CORO_CLOSED

    with_consumer(scenario)


def test_a_hand_over_that_waits_completes_when_what_it_waits_for_is_done() -> None:
    async def scenario(consumer: Consumer) -> None:
        room: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        async def hand_over() -> str:
            await asyncio.sleep(0)  # a bare yield on the way, as a queue's put may make
            return await room

        waiting = asyncio.ensure_future(
            consumer.wait_first(hand_over(), consumer.suspend_flow.wait())
        )
        await asyncio.sleep(0.01)
        assert not waiting.done()
        room.set_result("queued")
        _, results, stopped = await asyncio.wait_for(waiting, 5)
        assert results == ["queued"] and not stopped

    with_consumer(scenario)


def test_a_waiting_hand_over_gives_way_when_flow_is_suspended() -> None:
    async def scenario(consumer: Consumer) -> None:
        never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        cancelled = asyncio.Event()

        async def hand_over() -> None:
            try:
                await never
            except asyncio.CancelledError:
                cancelled.set()
                raise

        waiting = asyncio.ensure_future(
            consumer.wait_first(hand_over(), consumer.suspend_flow.wait())
        )
        await asyncio.sleep(0.01)
        consumer.suspend_flow.set()
        _, results, _ = await asyncio.wait_for(waiting, 5)
        assert results == [True]  # suspend_flow won, as in Faust's own race
        await asyncio.wait_for(cancelled.wait(), 5)

    with_consumer(scenario)


def test_a_hand_over_that_fails_raises_into_the_fetch_loop() -> None:
    async def scenario(consumer: Consumer) -> None:
        async def hand_over() -> None:
            raise ValueError("undecodable")

        with pytest.raises(ValueError, match="undecodable"):
            await consumer.wait_first(hand_over(), consumer.suspend_flow.wait())

    with_consumer(scenario)


def test_suspended_flow_is_left_to_modes_race() -> None:
    async def scenario(consumer: Consumer) -> None:
        consumer.suspend_flow.set()
        ran_in: list[Any] = []

        async def hand_over() -> None:
            ran_in.append(asyncio.current_task())

        await consumer.wait_first(hand_over(), consumer.suspend_flow.wait())
        assert ran_in and ran_in != [asyncio.current_task()]

    with_consumer(scenario)
