"""The registry helpers without a store: rollback targets, the history table, error handling."""

from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INTERNAL_ERROR,
    PERMISSION_DENIED,
    RESOURCE_DOES_NOT_EXIST,
    TEMPORARILY_UNAVAILABLE,
)

from tweetops.errors import TweetopsError
from tweetops.registry import AliasMove, champion_version, history_table, previous_champion


def move(action: str, from_version: str | None, to_version: str) -> AliasMove:
    return AliasMove(
        at="2026-11-25T20:00:00+00:00",
        alias="champion",
        action=action,
        from_version=from_version,
        to_version=to_version,
        reason="why",
        challenger_rmse=0.5,
        champion_rmse=None if from_version is None else 0.6,
    )


def test_the_previous_champion_is_the_one_before_the_current() -> None:
    assert previous_champion([]) is None
    assert previous_champion([move("promote", None, "1")]) is None
    assert previous_champion([move("promote", None, "1"), move("promote", "1", "3")]) == "1"


def test_rollbacks_walk_back_through_the_champions() -> None:
    moves = [move("promote", None, "1"), move("promote", "1", "2"), move("promote", "2", "4")]
    assert previous_champion(moves) == "2"
    moves.append(move("rollback", "4", "2"))
    assert previous_champion(moves) == "1"  # a second rollback goes further back
    moves.append(move("rollback", "2", "1"))
    assert previous_champion(moves) is None
    moves.append(move("promote", "1", "5"))
    assert previous_champion(moves) == "1"


def test_the_history_table_has_one_line_per_move_with_versions_and_scores() -> None:
    table = history_table([move("promote", None, "1"), move("promote", "1", "2")]).splitlines()
    assert table[0].split() == [
        "when",
        "action",
        "from",
        "to",
        "challenger",
        "rmse",
        "champion",
        "rmse",
        "reason",
    ]
    assert table[1].split() == [
        "2026-11-25T20:00:00+00:00",
        "promote",
        "-",
        "v1",
        "0.5000",
        "-",
        "why",
    ]
    assert table[2].split() == [
        "2026-11-25T20:00:00+00:00",
        "promote",
        "v1",
        "v2",
        "0.5000",
        "0.6000",
        "why",
    ]


class _Registry:
    """A stand-in for MlflowClient whose registry call fails with `error_code`."""

    def __init__(self, error_code: int | None, aliases: dict | None = None) -> None:
        self.error_code, self._aliases = error_code, aliases or {}

    def get_registered_model(self, name: str) -> object:
        if self.error_code is not None:
            raise MlflowException(f"registered model {name}: it failed\nline two", self.error_code)
        return type("Model", (), {"aliases": self._aliases, "tags": {}})()


def test_only_a_missing_model_or_alias_means_no_champion() -> None:
    assert champion_version(_Registry(None, {"challenger": 2}), "m") is None
    assert champion_version(_Registry(None, {"champion": 3}), "m") == "3"
    assert champion_version(_Registry(RESOURCE_DOES_NOT_EXIST), "m") is None


def test_a_refused_registry_read_names_the_permission_to_ask_for() -> None:
    with pytest.raises(TweetopsError) as failed:
        champion_version(_Registry(PERMISSION_DENIED), "m")
    message = str(failed.value)
    assert message.startswith("The tracking server refused reading the aliases of m to user ")
    assert "EDIT permission" in message and "\n" not in message


@pytest.mark.parametrize("code", [INTERNAL_ERROR, TEMPORARILY_UNAVAILABLE])
def test_any_other_registry_error_is_one_sentence(code: int) -> None:
    with pytest.raises(TweetopsError) as failed:
        champion_version(_Registry(code), "m")
    message = str(failed.value)
    assert message.startswith("The model registry failed while reading the aliases of m (")
    assert "it failed" in message and "\n" not in message and message.endswith(".")
