"""The benchmark flood's skew: which entity each posted event is about (no services)."""

from __future__ import annotations

from collections import Counter

import pytest

from devenv.event_flood import entity_for


def test_all_on_the_hot_entity_by_default_or_with_nothing_else() -> None:
    assert {entity_for(index, 1.0, 7) for index in range(1000)} == {0}
    assert {entity_for(index, 0.5, 0) for index in range(1000)} == {0}


def test_the_hot_share_holds_in_any_window_and_the_rest_is_spread_evenly() -> None:
    entities = [entity_for(index, 0.99, 7) for index in range(7000)]
    assert entities.count(0) == 6930
    for start in range(0, 6900, 37):
        assert 98 <= entities[start : start + 100].count(0) <= 100
    cold = Counter(entity for entity in entities if entity != 0)
    assert set(cold) == set(range(1, 8))
    assert max(cold.values()) - min(cold.values()) <= 1


@pytest.mark.parametrize("share", [0.0, 0.3, 0.75])
def test_other_shares_are_met_too(share: float) -> None:
    entities = [entity_for(index, share, 3) for index in range(1000)]
    assert abs(entities.count(0) - share * 1000) <= 1
    assert set(entities) <= {0, 1, 2, 3}
