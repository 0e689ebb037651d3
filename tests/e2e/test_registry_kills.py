"""kill -9 in the middle of a champion move (`registry rollback`, promote's publish).

`registry rollback` runs as a real process that kills itself with SIGKILL right after the
registry moved the alias and before the move was recorded: a deterministic kill -9 at that
point. Promote's publish makes the same move; its test leaves the same state in process (a
promote process needs Spark, too slow to start for this). The next registry run must find the
last good state: the champion its history names, every move recorded once.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import Project, TrainedProject
from tweetops.promote import promote
from tweetops.registry import champion_version, history, move_champion, rollback

pytestmark = pytest.mark.slow

NAME = "tweet-engagement"

# `python -c KILLED_AFTER_ALIAS <tweetops args...>`: SIGKILL right after `champion` moved
KILLED_AFTER_ALIAS = """
import os, runpy, signal, sys
from mlflow.tracking import MlflowClient
move = MlflowClient.set_registered_model_alias
def move_then_die(self, name, alias, version):
    move(self, name, alias, version)
    if alias == "champion":
        os.kill(os.getpid(), signal.SIGKILL)
MlflowClient.set_registered_model_alias = move_then_die
sys.argv = ["tweetops", *sys.argv[1:]]
runpy.run_module("tweetops", run_name="__main__")
"""


def _killed(project: Project, *args: str) -> None:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{project.root / 'mlflow.db'}"}
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_ALIAS, *args],
        cwd=project.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]


def _three_champions(client: MlflowClient, project: Project) -> None:
    client.create_registered_model(NAME)
    for version in ("1", "2", "3"):
        client.create_model_version(NAME, source=f"{project.root}/model")
        move_champion(client, NAME, version, action="promote", reason=f"v{version} better")


def test_kill_9_mid_rollback_leaves_the_last_recorded_champion(
    project: Project, caplog: pytest.LogCaptureFixture
) -> None:
    client = MlflowClient()
    _three_champions(client, project)
    _killed(project, "registry", "rollback")
    assert champion_version(client, NAME) == "2"  # moved, not recorded: cut short

    with caplog.at_level(logging.WARNING, logger="tweetops"):
        move = rollback(client, NAME)  # the next run settles the cut-short move first

    assert "was cut short" in caplog.text
    assert (move.from_version, move.to_version) == ("3", "2")
    moves = history(client, NAME)
    assert [(m.action, m.from_version, m.to_version) for m in moves] == [
        ("promote", None, "1"),
        ("promote", "1", "2"),
        ("promote", "2", "3"),
        ("rollback", "3", "2"),
    ]
    assert champion_version(client, NAME) == moves[-1].to_version
    assert client.get_model_version(NAME, "3").tags["tweetops.champion_until"] == moves[-1].at


class _Killed(BaseException):
    """Stands for SIGKILL inside this process: nothing after it runs, no handler sees it."""


def test_a_promote_cut_short_after_moving_champion_is_undone_by_the_next_promote(
    trained_project: TrainedProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    # what a promote killed right after moving champion leaves (the rollback above is killed
    # as a real process at that point): v1 registered, champion on it, the move not recorded
    project = trained_project
    client = MlflowClient()
    registered = mlflow.register_model(project.trained.model_uri, NAME)

    def die(*_: object) -> None:
        raise _Killed

    with monkeypatch.context() as patch:
        patch.setattr(MlflowClient, "set_model_version_tag", die)
        with pytest.raises(_Killed):
            move_champion(client, NAME, str(registered.version), action="promote", reason="x")
    assert champion_version(client, NAME) == "1" and history(client, NAME) == []

    result = promote(project.settings())

    assert (result.version, result.promoted, result.champion_after) == ("1", True, "1")
    moves = history(client, NAME)
    assert [(m.action, m.from_version, m.to_version) for m in moves] == [("promote", None, "1")]
    assert "tweetops.pending_move" not in client.get_registered_model(NAME).tags
