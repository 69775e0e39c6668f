"""Replaying exact ranges from a real broker: offsets, times, counts, filters, errors."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from devenv import LocalKafka
from replay.errors import ReplayUsageError
from replay.session import ReplayRequest, run_replay
from replay.spec import OffsetBound, ReplaySpec
from tests.replay.helpers import EPOCH, fill_topic, settings_for

pytestmark = pytest.mark.integration


def replay_to_file(kafka: LocalKafka, tmp_path: Path, spec: ReplaySpec, name: str = "out"):
    out = tmp_path / f"{name}.jsonl"
    request = ReplayRequest(
        spec,
        f"file:{out}",
        state_path=tmp_path / f"{name}.state.json",
        progress_stream=io.StringIO(),
    )
    outcome = run_replay(settings_for(kafka), request)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    return outcome, lines


def test_replays_an_inclusive_offset_range_of_one_partition(
    kafka: LocalKafka, topic_name: Callable[[str], str], tmp_path: Path
) -> None:
    topic = topic_name("offsets")
    fill_topic(kafka, topic, 40, partitions=2)
    spec = ReplaySpec(topic, from_offsets=(OffsetBound(5, 1),), to_offsets=(OffsetBound(9),))
    outcome, lines = replay_to_file(kafka, tmp_path, spec)

    assert outcome.complete
    assert [(line["partition"], line["offset"]) for line in lines] == [(1, o) for o in range(5, 10)]
    # partition 1 holds the odd keys: offset o is key 2*o+1
    assert [line["event"]["data"]["Key"] for line in lines] == [2 * o + 1 for o in range(5, 10)]
    (only,) = outcome.report["partitions"]
    assert (only["firstOffset"], only["lastOffset"], only["read"], only["written"]) == (5, 9, 5, 5)
    assert not outcome.state_path.exists(), "a completed replay leaves no resume state"


def test_replays_a_half_open_time_window(
    kafka: LocalKafka, topic_name: Callable[[str], str], tmp_path: Path
) -> None:
    topic = topic_name("times")
    fill_topic(kafka, topic, 30, partitions=3)
    spec = ReplaySpec(
        topic,
        from_time=EPOCH + timedelta(minutes=10),
        to_time=EPOCH + timedelta(minutes=20),
    )
    outcome, lines = replay_to_file(kafka, tmp_path, spec)

    assert sorted(line["event"]["data"]["Key"] for line in lines) == list(range(10, 20))
    totals = outcome.report["totals"]
    assert totals["read"] == totals["written"] == 10
    assert totals["firstTime"] == "2026-01-01T00:10:00.000Z"
    assert totals["lastTime"] == "2026-01-01T00:19:00.000Z"


def test_count_bounds_each_partition_and_type_filter_is_counted(
    kafka: LocalKafka, topic_name: Callable[[str], str], tmp_path: Path
) -> None:
    topic = topic_name("count")
    fill_topic(kafka, topic, 60, partitions=2)
    spec = ReplaySpec(
        topic,
        from_beginning=True,
        count=12,
        type_globs=("com.vmware.vsphere.VmPowered*",),
    )
    outcome, lines = replay_to_file(kafka, tmp_path, spec)

    for part in outcome.report["partitions"]:
        assert part["read"] == 12
        assert part["filtered"] == 4, "every third event is an AlarmStatusChangedEvent"
        assert part["written"] == 8
    assert all("VmPowered" in line["event"]["type"] for line in lines)
    assert len(lines) == 16


def test_undecodable_records_are_counted_and_listed_not_written(
    kafka: LocalKafka, topic_name: Callable[[str], str], tmp_path: Path
) -> None:
    topic = topic_name("poison")
    fill_topic(kafka, topic, 20, poison_every=5)
    outcome, lines = replay_to_file(kafka, tmp_path, ReplaySpec(topic, from_beginning=True))

    (part,) = outcome.report["partitions"]
    assert (part["read"], part["written"], part["skipped"]) == (20, 16, 4)
    assert [bad["offset"] for bad in part["undecodable"]] == [4, 9, 14, 19]
    assert "missing header" in part["undecodable"][0]["reason"]
    assert len(lines) == 16


def test_two_replays_of_one_range_have_the_same_checksum(
    kafka: LocalKafka, topic_name: Callable[[str], str], tmp_path: Path
) -> None:
    topic = topic_name("checksum")
    fill_topic(kafka, topic, 50, partitions=3)
    spec = ReplaySpec(topic, from_beginning=True)
    first, _ = replay_to_file(kafka, tmp_path, spec, "first")
    second, _ = replay_to_file(kafka, tmp_path, spec, "second")
    other, _ = replay_to_file(
        kafka, tmp_path, ReplaySpec(topic, from_offsets=(OffsetBound(1),)), "other"
    )

    assert first.report["checksum"] == second.report["checksum"]
    assert other.report["checksum"] != first.report["checksum"]


@pytest.mark.parametrize(
    ("spec_kwargs", "expected"),
    [
        ({"from_offsets": (OffsetBound(10),)}, "offset 10 is beyond the last offset"),
        ({"from_offsets": (OffsetBound(3, 4),)}, "has no partition 4; it has partitions 0..1"),
        (
            {"from_beginning": True, "to_offsets": (OffsetBound(99),)},
            "--to-offset 99 is beyond the last offset",
        ),
        (
            {"from_time": EPOCH - timedelta(days=1)},
            "before the earliest retained record (2026-01-01T00:00:00.000Z)",
        ),
        ({"from_time": EPOCH + timedelta(days=1)}, "after the last record"),
    ],
    ids=[
        "offset-beyond-end",
        "no-such-partition",
        "to-offset-beyond-end",
        "time-too-early",
        "time-too-late",
    ],
)
def test_out_of_range_requests_state_the_available_range(
    kafka: LocalKafka,
    topic_name: Callable[[str], str],
    tmp_path: Path,
    spec_kwargs: dict[str, object],
    expected: str,
) -> None:
    topic = topic_name("range")
    fill_topic(kafka, topic, 10, partitions=2)
    with pytest.raises(ReplayUsageError) as raised:
        replay_to_file(kafka, tmp_path, ReplaySpec(topic, **spec_kwargs))  # type: ignore[arg-type]
    message = str(raised.value)
    assert expected in message
    assert "partition 0: offsets 0..4" in message or "partitions 0..1" in message


def test_missing_topic_is_a_clear_error(
    kafka: LocalKafka, topic_name: Callable[[str], str], tmp_path: Path
) -> None:
    present, absent = topic_name("present"), topic_name("absent")
    fill_topic(kafka, present, 1)
    with pytest.raises(ReplayUsageError, match=r"topic .* does not exist") as raised:
        replay_to_file(kafka, tmp_path, ReplaySpec(absent, from_beginning=True))
    # the hint names topics that exist, never the missing one
    available = str(raised.value).split("topics here: ")[1]
    assert absent not in available.split(", ")
    assert present in str(raised.value) or len(available.split(", ")) == 20
