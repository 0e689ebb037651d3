"""The champion rule as a pure function: no MLflow, no Spark."""

from __future__ import annotations

import pytest

from tweetops.promote import Scored, decide_promotion
from tweetops.settings import PromoteSettings

GATE = PromoteSettings(
    model_name="m",
    run_file="r.json",
    promotion_file="p.json",
    min_gain_over_baseline=0.05,
    min_improvement=0.0,
    min_comparison_rows=100,
    force=False,
)


def decide(
    challenger: float,
    champion: float | None = None,
    *,
    baseline: float = 1.0,
    rows: int = 500,
    same_schema: bool = True,
    **gate: object,
):
    return decide_promotion(
        Scored("4", challenger),
        None if champion is None else Scored("2", champion),
        baseline_rmse=baseline,
        comparison_rows=rows,
        same_schema=same_schema,
        gate=GATE.model_copy(update=gate),
    )


def test_first_version_becomes_champion_when_it_beats_the_baseline() -> None:
    decision = decide(0.70)
    assert decision.promoted
    assert decision.reason == "no champion yet; challenger rmse 0.7000 on 500 test rows"


def test_the_champion_itself_stays_champion() -> None:
    decision = decide_promotion(
        Scored("3", 0.7),
        Scored("3", 0.7),
        baseline_rmse=1.0,
        comparison_rows=1,
        same_schema=True,
        gate=GATE,
    )
    assert decision.promoted and decision.reason == "already champion"


def test_a_lower_rmse_wins_and_the_reason_names_both_scores() -> None:
    decision = decide(0.65, 0.70, rows=123)
    assert decision.promoted
    assert decision.reason == (
        "challenger rmse 0.6500 beats champion v2 rmse 0.7000 (+7.1%, "
        "needs > 0.0%) on the same 123 test rows"
    )


@pytest.mark.parametrize("challenger_rmse", [0.70, 0.71])
def test_an_equal_or_higher_rmse_does_not_win(challenger_rmse: float) -> None:
    decision = decide(challenger_rmse, 0.70)
    assert not decision.promoted
    assert "does not beat champion v2" in decision.reason


def test_the_improvement_over_the_champion_must_exceed_min_improvement() -> None:
    assert decide(0.68, 0.70, min_improvement=0.02).promoted  # 2.9% > 2%
    refused = decide(0.69, 0.70, min_improvement=0.02)  # 1.4%
    assert not refused.promoted and "needs > 2.0%" in refused.reason


def test_the_challenger_must_beat_the_mean_baseline_by_the_gain() -> None:
    without_champion = decide(0.97, baseline=1.0)  # 3% < 5%
    assert not without_champion.promoted
    assert "gains only 3.0% over the mean baseline rmse 1.0000" in without_champion.reason
    # beating the champion is not enough when both are barely better than the mean
    against_champion = decide(0.97, 0.99, baseline=1.0)
    assert not against_champion.promoted and "beats champion v2" in against_champion.reason
    assert decide(0.94, 0.99, baseline=1.0).promoted


def test_too_few_comparison_rows_means_no_promotion_and_says_why() -> None:
    for champion in (None, 0.9):
        decision = decide(0.5, champion, rows=99)
        assert not decision.promoted
        assert "only 99 rows are test rows of both runs" in decision.reason
        assert "promote.min_comparison_rows=100" in decision.reason
    assert decide(0.5, rows=100).promoted


def test_a_different_input_schema_needs_force() -> None:
    refused = decide(0.5, 0.7, same_schema=False)
    assert not refused.promoted and "-S force=true" in refused.reason
    forced = decide(0.5, 0.7, same_schema=False, force=True)
    assert forced.promoted and "promoted by force" in forced.reason
    # force does not override the scores
    assert not decide(0.8, 0.7, same_schema=False, force=True).promoted
