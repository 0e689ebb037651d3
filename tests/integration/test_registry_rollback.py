"""Rollback in a real SQLite registry when the version it would go back to is gone."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import Project
from tweetops.errors import TweetopsError
from tweetops.registry import CHAMPION, champion_version, move_champion, rollback

NAME = "tweet-engagement"


def _versions(client: MlflowClient, count: int, tmp: str) -> None:
    client.create_registered_model(NAME)
    for _ in range(count):
        client.create_model_version(NAME, source=f"{tmp}/model")


def test_rollback_to_a_deleted_version_says_so_and_keeps_the_champion(project: Project) -> None:
    client = MlflowClient()
    _versions(client, 2, str(project.root))
    move_champion(client, NAME, "1", action="promote", reason="first")
    move_champion(client, NAME, "2", action="promote", reason="better")
    client.delete_model_version(NAME, "1")
    with pytest.raises(TweetopsError) as refused:
        rollback(client, NAME)
    assert str(refused.value) == (
        f"{NAME} v1, the previous {CHAMPION}, was deleted from the registry: there is nothing to "
        f"roll back to; {CHAMPION} stays v2 (promote another model with `tweetops promote`)."
    )
    assert champion_version(client, NAME) == "2"


def test_rollback_to_a_kept_version_moves_the_champion(project: Project) -> None:
    client = MlflowClient()
    _versions(client, 2, str(project.root))
    move_champion(client, NAME, "1", action="promote", reason="first")
    move_champion(client, NAME, "2", action="promote", reason="better")
    assert rollback(client, NAME).to_version == "1"
    assert champion_version(client, NAME) == "1"
