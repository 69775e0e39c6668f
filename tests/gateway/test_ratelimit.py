"""The webhook's token bucket, on a clock the test moves."""

from __future__ import annotations

import pytest

from gateway.ratelimit import TokenBucket


def test_bucket_refills_at_the_rate_up_to_the_burst() -> None:
    now = [1000.0]
    bucket = TokenBucket(rate=2, burst=4, clock=lambda: now[0])
    assert bucket.take(4) == 0  # a full bucket to start with
    assert bucket.take(1) == pytest.approx(0.5)  # one token takes half a second
    now[0] += 1
    assert bucket.take(3) == pytest.approx(0.5)  # two came back; refused, none taken
    assert bucket.take(2) == 0
    now[0] += 60
    assert bucket.take(5) == pytest.approx(0.5)  # never more than the burst
    assert bucket.take(4) == 0
    assert TokenBucket.retry_after(0.2) == "1" and TokenBucket.retry_after(2.1) == "3"
