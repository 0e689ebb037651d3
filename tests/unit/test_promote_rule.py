"""The champion rule as a pure function: no MLflow, no Spark."""

from __future__ import annotations

import pytest

from tweetops.promote import decide_promotion


def test_first_version_becomes_champion() -> None:
    decision = decide_promotion("1", 0.70, None, None, test_rows=100)
    assert decision.promoted and decision.reason == "no champion yet"


def test_the_champion_itself_stays_champion() -> None:
    decision = decide_promotion("3", 0.70, "3", None, test_rows=100)
    assert decision.promoted and decision.reason == "already champion"


def test_a_lower_rmse_wins_and_the_reason_names_both_scores() -> None:
    decision = decide_promotion("4", 0.65, "2", 0.70, test_rows=123)
    assert decision.promoted
    assert decision.reason == ("challenger rmse 0.6500 beats champion v2 rmse 0.7000 on the "
                               "same 123 test rows")


@pytest.mark.parametrize("challenger_rmse", [0.70, 0.71])
def test_an_equal_or_higher_rmse_does_not_win(challenger_rmse: float) -> None:
    decision = decide_promotion("4", challenger_rmse, "2", 0.70, test_rows=10)
    assert not decision.promoted
    assert "does not beat champion v2" in decision.reason


def test_comparing_with_a_champion_needs_its_score() -> None:
    with pytest.raises(ValueError, match="needs its rmse"):
        decide_promotion("4", 0.6, "2", None, test_rows=10)
