"""`ZonedTimes.zoned` gives every text the verdict of `_parse_time(text).tzinfo is not
None` (False where it raises), whatever it learned before: the odd times, and texts
made from a grammar of almost-times, each asked once unlearned and again once learned."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codec import _parse_time
from schemas.zoned_times import ZonedTimes


def reference(text: str) -> bool:
    try:
        return _parse_time(text).tzinfo is not None
    except (ValueError, OverflowError):
        return False


# what a stream writes: its second and zone are learned before the odd texts are asked
LEARNED = [
    "2026-01-01T00:00:00Z",
    "2026-01-01T00:00:00.5+05:30",
    "2026-12-31T23:59:59.999999-08:00",
    "2026-02-28T10:00:00Z",
]

ODD = [
    "2026-01-01T00:00:00",  # no zone
    "2026-01-01T00:00:00.123456",  # a fraction, no zone
    "2026-01-01T00:00:00+05:30",
    "2026-01-01T00:00:00.1+05:30",
    "2026-01-01T00:00:00.123456789Z",  # 9 digits (Go): isoparse's
    "2026-01-01T00:00:00.1234567Z",
    "2026-01-01T00:00:00.Z",
    "2026-01-01T00:00:00..5Z",
    "2026-01-01T00:00:00.5.5Z",
    "2026-01-01T00:00:00.\u0661Z",  # an Arabic-Indic digit: str.isdigit says yes
    "2026-01-01T00:00:00.\u00b2Z",  # a superscript two
    "2026-01-01T00:00:00z",
    "2026-01-01T00:00:00+24:00",
    "2026-01-01T00:00:00+05:60",
    "2026-01-01T00:00:00+0530",
    "2026-01-01T00:00:00+05",
    "2026-01-01T00:00:00-00:00",
    "2026-01-01T00:00:00.5-00:00",
    "2026-01-01T00:00:00Z ",
    "2026-01-01T00:00:00ZZ",
    "2026-01-01T00:00:00.5ZZ",
    "2026-01-01T00:00:00\nZ",
    "2026-12-31T23:59:60Z",  # a leap second
    "2026-01-01T24:00:00Z",  # isoparse's midnight of the next day
    "2026-02-29T00:00:00Z",
    "2026-02-30T10:00:00Z",
    "2026-02-28T10:00:00.000001Z",
    "2026-02-28T10:00:00.5+99:99",
    "2026-01-01 00:00:00Z",
    "2026-01-01t00:00:00Z",
    "20260101T000000Z",
    "0001-01-01T00:00:00-23:59",
    "9999-12-31T23:59:59.999999+23:59",
    "",
    "Z",
    "yesterday",
    "2026-01-01T00:00:00Z" * 2,
]


@pytest.mark.parametrize("text", ODD)
def test_an_odd_time_gets_the_verdict_of_the_parse_after_its_second_and_zone_were_learned(
    text: str,
) -> None:
    times = ZonedTimes()
    for learned in LEARNED:
        assert times.zoned(learned)
    assert times.zoned(text) == reference(text)
    assert times.zoned(text) == reference(text)  # and once it may have been learned itself


def test_a_second_and_a_zone_once_learned_are_not_parsed_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import schemas.zoned_times

    times = ZonedTimes()
    for learned in LEARNED:
        times.zoned(learned)
    parsed: list[str] = []

    def counted(text: str) -> object:
        parsed.append(text)
        return _parse_time(text)

    monkeypatch.setattr(schemas.zoned_times, "_parse_time", counted)
    fast = [
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:00:00.123Z",
        "2026-01-01T00:00:00.123456+05:30",
        "2026-12-31T23:59:59-08:00",
        "2026-02-28T10:00:00.7-08:00",
    ]
    assert all(times.zoned(text) for text in fast)
    assert parsed == []
    seven = "2026-01-01T00:00:00.1234567Z"  # not the regular form: parsed
    assert times.zoned(seven) == reference(seven)
    assert parsed == [seven]


def test_the_seconds_kept_stay_bounded() -> None:
    times = ZonedTimes(limit=10)
    for second in range(25):
        assert times.zoned(f"2026-01-01T00:00:{second:02d}Z")
    assert len(times._seconds) <= 10


digits = st.text(alphabet="0123456789", min_size=2, max_size=2)
almost_second = st.builds(
    "{}-{}-{}{}{}:{}:{}".format,
    st.sampled_from(["2026", "0001", "9999", "0000", "2024"]),
    st.sampled_from(["01", "02", "12", "13", "00"]),
    st.sampled_from(["01", "28", "29", "30", "31", "32"]),
    st.sampled_from(["T", "t", " "]),
    st.sampled_from(["00", "12", "23", "24"]),
    st.sampled_from(["00", "59", "60"]),
    st.sampled_from(["00", "59", "60", "61"]),
)
fraction = st.one_of(
    st.just(""),
    st.builds(".{}".format, st.text(alphabet="0123456789", min_size=0, max_size=10)),
    st.builds(".{}".format, st.text(alphabet="01\u0661\u00b2", min_size=1, max_size=4)),
)
zone = st.one_of(
    st.sampled_from(["Z", "z", "", "+00:00", "-00:00", "+0530", "+05", "ZZ", " "]),
    st.builds("{}{}:{}".format, st.sampled_from("+-"), digits, digits),
)


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.tuples(almost_second, fraction, zone), min_size=1, max_size=8))
def test_almost_times_in_any_order_get_the_verdict_of_the_parse(
    parts: list[tuple[str, str, str]],
) -> None:
    times = ZonedTimes()
    texts = ["".join(p) for p in parts]
    # every text's second with every zone and fraction seen: the learned ones mixed
    texts += [second + rest + zone for second, _, _ in parts for _, rest, zone in parts]
    for text in texts:
        assert times.zoned(text) == reference(text), text


def test_only_a_text_read_the_regular_way_is_learned(monkeypatch: pytest.MonkeyPatch) -> None:
    """A time `_parse_time` gave to isoparse (a comma, 7 digits) teaches nothing: the
    argument for the verdict holds for the `fromisoformat` path only."""
    import schemas.zoned_times

    times = ZonedTimes()
    assert times.zoned("2026-01-01T00:00:00,5Z") == reference("2026-01-01T00:00:00,5Z")
    parsed: list[str] = []

    def counted(text: str) -> object:
        parsed.append(text)
        return _parse_time(text)

    monkeypatch.setattr(schemas.zoned_times, "_parse_time", counted)
    assert times.zoned("2026-01-01T00:00:00Z")
    assert parsed == ["2026-01-01T00:00:00Z"]


def test_a_second_the_parse_normalised_is_not_learned(monkeypatch: pytest.MonkeyPatch) -> None:
    """As Python 3.14 reads hour 24 as the next day's midnight (only without a fraction),
    a parse that moved the second says nothing of that second with a fraction."""
    from datetime import datetime, timedelta

    import schemas.zoned_times

    def later_python(text: str) -> datetime:
        if text[11:13] == "24":
            return datetime.fromisoformat(text[:11] + "00" + text[13:]) + timedelta(days=1)
        return datetime.fromisoformat(text)

    monkeypatch.setattr(schemas.zoned_times, "_from_iso", later_python)
    times = ZonedTimes()
    times._decide("2026-01-01T24:00:00Z")  # as if this Python had accepted it
    assert "2026-01-01T24:00:00" not in times._seconds
    assert not times.zoned("2026-01-01T24:00:00.5Z")
