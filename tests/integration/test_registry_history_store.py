"""Champion moves in a real MLflow registry: a sentence per move on the model, the full record
on the version, and `registry history` reading the full records back."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from mlflow.tracking import MlflowClient

from tests.conftest import Project
from tweetops import registry

NAME = "tweet-engagement"


def _versions(client: MlflowClient, tmp_path: Path, count: int) -> list[str]:
    client.create_registered_model(NAME)
    versions = []
    for index in range(count):
        source = tmp_path / f"model{index}"
        source.mkdir()
        versions.append(str(client.create_model_version(NAME, str(source)).version))
    return versions


def test_each_move_is_one_sentence_on_the_model_and_a_full_record_on_the_version(
    project: Project, tmp_path: Path
) -> None:
    client = MlflowClient(project.tracking_uri)
    first, second = _versions(client, tmp_path, 2)
    registry.move_champion(
        client,
        NAME,
        first,
        action="promote",
        reason="no champion yet",
        challenger_rmse=0.65312,
        comparison_rows=3040,
    )
    registry.move_champion(
        client,
        NAME,
        second,
        action="promote",
        reason="challenger beats champion",
        challenger_rmse=0.63661,
        champion_rmse=0.65312,
        comparison_rows=3051,
    )
    registry.rollback(client, NAME)

    tags = client.get_registered_model(NAME).tags
    sentences = [
        value for key, value in sorted(tags.items()) if key.startswith("tweetops.history.")
    ]
    assert sentences == [
        "none → v1: first champion, rmse 0.6531 on 3040 test rows",
        "v1 → v2: rmse 0.6531 → 0.6366 on 3051 shared test rows",
        "v2 → v1: rolled back",
    ]

    moves = registry.history(client, NAME)
    assert [(m.action, m.from_version, m.to_version) for m in moves] == [
        ("promote", None, first),
        ("promote", first, second),
        ("rollback", second, first),
    ]
    assert moves[1].reason == "challenger beats champion"
    assert moves[1].comparison_rows == 3051 and moves[1].champion_rmse == 0.65312
    # the full record lives on the version the move went to
    assert (
        "challenger beats champion"
        in client.get_model_version(NAME, second).tags["tweetops.history.000001"]
    )
    assert registry.champion_version(client, NAME) == first


def test_moves_recorded_as_json_on_the_model_are_still_read(
    project: Project, tmp_path: Path
) -> None:
    client = MlflowClient(project.tracking_uri)
    (first,) = _versions(client, tmp_path, 1)
    old = registry.AliasMove(
        at="2026-11-25T20:00:00+00:00",
        alias="champion",
        action="promote",
        from_version=None,
        to_version=first,
        reason="no champion yet",
        challenger_rmse=0.7,
    )
    client.set_registered_model_tag(NAME, "tweetops.history.000000", json.dumps(asdict(old)))
    assert registry.history(client, NAME) == [old]
