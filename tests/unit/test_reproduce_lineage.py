"""Reproduce reads a train run's lineage and refuses what it cannot re-run, before any fit."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import Project
from tweetops.errors import TweetopsError
from tweetops.reproduce import (
    Lineage,
    MetricComparison,
    code_commit_to_check_out,
    read_lineage,
    replayed_overrides,
    reproduce,
)

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=True, env=_env()
    )
    return done.stdout.strip()


def _env() -> dict[str, str]:
    import os

    return {**os.environ, **GIT_ENV}


def _commit(root: Path, message: str) -> str:
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", message)
    return _git(root, "rev-parse", "HEAD")


def _logged_run(client: MlflowClient, step: str, commit: str | None) -> str:
    experiment = client.create_experiment("reproduce-lineage")
    tags = {"tweetops.step": step}
    if commit:
        tags["tweetops.git_commit"] = commit
    run = client.create_run(experiment, tags=tags)
    client.log_param(run.info.run_id, "train.num_trees", "7")
    client.log_param(run.info.run_id, "spark.master", "spark://gone:7077")
    client.log_metric(run.info.run_id, "rmse", 1.5)
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


@pytest.fixture
def code_repo(project: Project, monkeypatch: pytest.MonkeyPatch) -> tuple[Project, str]:
    (project.root / "src").mkdir()
    (project.root / "src" / "model.py").write_text("DEPTH = 8\n")
    (project.root / "README.md").write_text("v1\n")
    _git(project.root, "init", "-q")
    return project, _commit(project.root, "first")


def test_uncommitted_code_is_refused_in_one_sentence(code_repo: tuple[Project, str]) -> None:
    project, commit = code_repo
    client = MlflowClient()
    run_id = _logged_run(client, "train", commit)
    (project.root / "src" / "model.py").write_text("DEPTH = 9\n")
    with pytest.raises(TweetopsError) as refused:
        reproduce(run_id, project.root / "params.yaml", [], client)
    message = str(refused.value)
    assert "has uncommitted changes" in message and "commit or stash them" in message
    assert commit[:12] in message
    assert len(client.search_runs([client.get_run(run_id).info.experiment_id])) == 1


def test_the_runs_commit_is_checked_out_only_when_the_code_differs(
    code_repo: tuple[Project, str],
) -> None:
    project, first = code_repo
    lineage = Lineage("r", {}, {}, first, None, None)
    assert code_commit_to_check_out(lineage) is None
    (project.root / "README.md").write_text("v2\n")  # not code: the same code as the run's
    _commit(project.root, "docs")
    assert code_commit_to_check_out(lineage) is None
    (project.root / "src" / "model.py").write_text("DEPTH = 12\n")
    _commit(project.root, "deeper")
    assert code_commit_to_check_out(lineage) == first
    missing = Lineage("r", {}, {}, "0" * 40, None, None)
    with pytest.raises(TweetopsError, match="is not in this repository"):
        code_commit_to_check_out(missing)


def test_only_train_runs_of_the_store_are_reproduced(project: Project) -> None:
    client = MlflowClient()
    tune_run = _logged_run(client, "tune", None)
    with pytest.raises(TweetopsError, match="is a tune run, and reproduce re-runs train runs"):
        read_lineage(client, tune_run)
    with pytest.raises(TweetopsError, match="was not found in the tracking store"):
        read_lineage(client, "f" * 32)


def test_the_logged_model_settings_are_replayed_and_the_deployment_is_not() -> None:
    lineage = Lineage(
        "abc",
        {
            "train.num_trees": "7",
            "train.tuned_from": "reports/tune.json",
            "mlflow.experiment": "team",
            "spark.master": "spark://gone:7077",
        },
        {},
        None,
        None,
        None,
    )
    overrides = replayed_overrides(lineage, Path("reports/reproduce/abc"))
    assert "train.num_trees=7" in overrides and "mlflow.experiment=team" in overrides
    assert not any(item.startswith("spark.") for item in overrides)
    assert overrides.index("train.tuned_from=reports/tune.json") < overrides.index(
        "train.tuned_from=null"
    )
    assert "train.run_file=reports/reproduce/abc/train_run.json" in overrides


def test_metrics_are_the_same_only_when_equal() -> None:
    assert MetricComparison("rmse", 1.25, 1.25).same
    assert not MetricComparison("rmse", 1.25, 1.2500001).same
    assert not MetricComparison("rmse", 1.25, None).same
