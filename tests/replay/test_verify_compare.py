"""The verdict of `audit verify --against-topic`, one discrepancy at a time."""

from __future__ import annotations

from replay.tally import checksum_hex, record_digest
from replay.verify import PartitionCheck, StoredRef, compare

EXPECTED = {10: "id-10", 11: "id-11", 12: "id-12", 14: "id-14"}  # 13: filtered in the topic


def check(stored: list[StoredRef]) -> PartitionCheck:
    return compare(PartitionCheck(0, 10, 15), EXPECTED, stored)


def refs(*pairs: tuple[int, str]) -> list[StoredRef]:
    return [StoredRef(0, offset, event_id) for offset, event_id in pairs]


def test_an_exact_store_is_ok_and_its_checksum_matches_the_replays() -> None:
    result = check(refs((10, "id-10"), (11, "id-11"), (12, "id-12"), (14, "id-14")))
    assert result.ok and result.present == 4 and result.expected == 4
    replay_checksum = sum(record_digest(0, o, i) for o, i in EXPECTED.items())
    assert result.to_json()["checksum"] == checksum_hex(replay_checksum)


def test_store_missing_an_offset_is_reported() -> None:
    result = check(refs((10, "id-10"), (12, "id-12"), (14, "id-14")))
    assert not result.ok and result.missing == [11] and result.present == 3


def test_store_holding_an_offset_twice_is_reported() -> None:
    result = check(refs((10, "id-10"), (11, "id-11"), (11, "id-11"), (12, "id-12"), (14, "id-14")))
    assert not result.ok and result.duplicated == [11] and result.present == 3


def test_store_row_with_another_events_id_is_reported() -> None:
    result = check(refs((10, "id-10"), (11, "forged"), (12, "id-12"), (14, "id-14")))
    assert not result.ok and result.wrong_id == [11]


def test_store_row_for_an_offset_the_topic_would_not_store_is_reported() -> None:
    result = check(refs((10, "id-10"), (11, "id-11"), (12, "id-12"), (13, "x"), (14, "id-14")))
    assert not result.ok and result.unexpected == [13] and result.present == 4
