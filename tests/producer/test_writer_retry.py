"""The writer's retries: a step's first attempt runs outside tenacity (the common case,
nothing failed), and a failure continues into the same backoff as before.

No broker is needed: `_retry` takes any step, and the backoff's pauses are recorded
instead of slept (the broker-restart and fencing tests run the same code on Kafka).
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from producer.writer import FIRST_BACKOFF_S, Stopped, TransactionalWriter, _Abort, _Retry
from vcstream.settings.kafka import KafkaSettings


class Recording(TransactionalWriter):
    """A writer whose backoff records its pauses; `stop_after` pauses set the stop event."""

    def __init__(self, stop_after: int | None = None) -> None:
        super().__init__(
            KafkaSettings(bootstrapServers="127.0.0.1:9"),
            "retry-test",
            timedelta(seconds=10),
            "vc",
            threading.Event(),
        )
        self.pauses: list[float] = []
        self.stop_after = stop_after

    def _pause(self, seconds: float) -> None:
        self.pauses.append(seconds)
        if self.stop_after is not None and len(self.pauses) >= self.stop_after:
            self._stop.set()


class Failing:
    """A step that raises `error` for its first `failures` calls, then succeeds."""

    def __init__(self, failures: int, error: type[Exception] = _Retry) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error()


def test_a_step_that_succeeds_runs_once_without_a_pause() -> None:
    writer, step = Recording(), Failing(0)
    writer._retry(step)
    assert (step.calls, writer.pauses) == (1, [])


def test_a_failed_first_attempt_continues_into_the_doubling_backoff() -> None:
    writer, step = Recording(), Failing(4)
    writer._retry(step)
    assert step.calls == 5
    assert writer.pauses == pytest.approx([FIRST_BACKOFF_S * 2**n for n in range(4)])


def test_an_abortable_error_is_retried_only_where_asked() -> None:
    writer = Recording()
    with pytest.raises(_Abort):
        writer._retry(Failing(1, _Abort))
    step = Failing(1, _Abort)
    writer._retry(step, also=_Abort)
    assert step.calls == 2


def test_shutdown_during_a_failed_first_attempt_stops_the_step() -> None:
    writer = Recording()
    step = Failing(1)

    def failing_as_shutdown_begins() -> None:
        writer._stop.set()
        step()

    with pytest.raises(Stopped):
        writer._retry(failing_as_shutdown_begins)
    assert (step.calls, writer.pauses) == (1, [])


def test_shutdown_during_the_backoff_stops_the_step() -> None:
    writer, step = Recording(stop_after=2), Failing(10)
    with pytest.raises(Stopped):
        writer._retry(step)
    assert step.calls == 2  # the first attempt, one retry; none after the stop
