"""The champion history as data: which version a rollback returns to, and the printed table."""

from __future__ import annotations

from tweetops.registry import AliasMove, history_table, previous_champion


def move(action: str, from_version: str | None, to_version: str) -> AliasMove:
    return AliasMove(at="2026-11-25T20:00:00+00:00", alias="champion", action=action,
                     from_version=from_version, to_version=to_version, reason="why",
                     challenger_rmse=0.5, champion_rmse=None if from_version is None else 0.6)


def test_the_previous_champion_is_the_one_before_the_current() -> None:
    assert previous_champion([]) is None
    assert previous_champion([move("promote", None, "1")]) is None
    assert previous_champion([move("promote", None, "1"), move("promote", "1", "3")]) == "1"


def test_rollbacks_walk_back_through_the_champions() -> None:
    moves = [move("promote", None, "1"), move("promote", "1", "2"), move("promote", "2", "4")]
    assert previous_champion(moves) == "2"
    moves.append(move("rollback", "4", "2"))
    assert previous_champion(moves) == "1"        # a second rollback goes further back
    moves.append(move("rollback", "2", "1"))
    assert previous_champion(moves) is None
    moves.append(move("promote", "1", "5"))
    assert previous_champion(moves) == "1"


def test_the_history_table_has_one_line_per_move_with_versions_and_scores() -> None:
    table = history_table([move("promote", None, "1"), move("promote", "1", "2")]).splitlines()
    assert table[0].split() == ["when", "action", "from", "to", "challenger", "rmse",
                                "champion", "rmse", "reason"]
    assert table[1].split() == ["2026-11-25T20:00:00+00:00", "promote", "-", "v1", "0.5000",
                                "-", "why"]
    assert table[2].split() == ["2026-11-25T20:00:00+00:00", "promote", "v1", "v2", "0.5000",
                                "0.6000", "why"]
