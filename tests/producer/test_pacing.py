"""The pacer: reads as late as the latency budget allows, sooner when cycles run long.

Times are given, not measured: the pacer's arithmetic is the promise here (the worker's
wiring is covered by test_produce's trickle test on a real broker and vcsim)."""

from __future__ import annotations

import pytest

from producer.pacing import RECENT_CYCLES, Pacer


def cycle(pacer: Pacer, now: float, overhead: float, late: float = 0.0) -> float:
    """One caught-up cycle from `now`: wait for the planned read (`late` behind it), read,
    commit `overhead - late` after the read began. Returns when the commit ended."""
    due = pacer.plan(now)
    read_at = due + late
    pacer.read_began(read_at)
    committed_at = read_at + overhead - late
    pacer.committed(committed_at)
    return committed_at


def exposure(pacer: Pacer, now: float, overhead: float, late: float = 0.0) -> float:
    """What the next cycle exposes an event to: the previous read to the commit."""
    previous = pacer._last
    assert previous is not None
    return cycle(pacer, now, overhead, late) - previous


def test_a_quiet_cycle_waits_the_whole_budget_less_its_overhead() -> None:
    pacer = Pacer(0.170)
    assert pacer.interval_s() == pytest.approx(0.170)  # nothing learnt yet
    pacer.read_began(0.0)
    pacer.committed(0.010)  # the first cycle: an event read right after it arrived
    now = 0.010
    for _ in range(5):
        now = cycle(pacer, now, overhead=0.010)
    assert pacer.interval_s() == pytest.approx(0.160)
    assert exposure(pacer, now, overhead=0.010) == pytest.approx(0.170)


def test_slow_commits_and_late_wake_ups_shorten_the_interval_within_the_budget() -> None:
    pacer = Pacer(0.170)
    pacer.read_began(0.0)
    now = 0.0
    for _ in range(5):
        now = cycle(pacer, now, overhead=0.010)
    # a loaded machine: the wake-up comes 30 ms late and the commit takes 50 ms
    first = exposure(pacer, now, overhead=0.080, late=0.030)
    assert first == pytest.approx(0.160 + 0.080)  # this one cycle overran: learnt
    assert pacer.interval_s() == pytest.approx(0.090)
    now = pacer._last or 0.0
    for _ in range(10):
        assert exposure(pacer, now, overhead=0.080, late=0.030) == pytest.approx(0.170)
        now = pacer._last or 0.0


def test_a_lone_slow_cycle_among_quick_ones_leaves_the_interval_alone() -> None:
    pacer = Pacer(0.170)
    pacer.read_began(0.0)
    now = 0.0
    for _ in range(RECENT_CYCLES - 1):
        now = cycle(pacer, now, overhead=0.010)
    # a broker pause: this one cycle overruns the budget by what it took longer ...
    assert exposure(pacer, now, overhead=0.100) == pytest.approx(0.260)
    # ... and the next ones still wait the whole budget less the usual overhead
    assert pacer.interval_s() == pytest.approx(0.160)
    now = pacer._last or 0.0
    assert exposure(pacer, now, overhead=0.010) == pytest.approx(0.170)


def test_a_slow_spell_shortens_the_interval_until_it_is_forgotten() -> None:
    pacer = Pacer(0.170)
    pacer.read_began(0.0)
    now = 0.0
    slow = RECENT_CYCLES // 10 + 1  # more than a tenth of the cycles remembered
    for _ in range(RECENT_CYCLES - slow):
        now = cycle(pacer, now, overhead=0.010)
    for _ in range(slow):
        now = cycle(pacer, now, overhead=0.100)
    assert pacer.interval_s() == pytest.approx(0.070)
    for _ in range(RECENT_CYCLES - slow):
        now = cycle(pacer, now, overhead=0.010)
    assert pacer.interval_s() == pytest.approx(0.070)  # all of them still remembered
    now = cycle(pacer, now, overhead=0.010)  # the first slow one is forgotten
    assert pacer.interval_s() == pytest.approx(0.160)


def test_a_read_after_a_long_quiet_spell_is_due_at_once_and_teaches_no_lateness() -> None:
    pacer = Pacer(0.170)
    pacer.read_began(0.0)
    pacer.committed(0.010)
    # the next events ring the doorbell 60 s later: read now, not 60 s "late"
    assert pacer.plan(60.0) == 60.0
    pacer.read_began(60.0)
    pacer.committed(60.010)
    assert pacer.interval_s() == pytest.approx(0.160)  # 60 s planned: no lateness


def test_commits_overlapping_reads_teach_nothing_and_a_zero_budget_never_waits() -> None:
    pacer = Pacer(0.0)
    pacer.read_began(0.0)
    pacer.read_began(0.005)  # a backlog: read on, the commit in the pipeline
    assert pacer.plan(0.006) == 0.006
    assert pacer.interval_s() == 0.0
