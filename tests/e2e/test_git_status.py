"""What the steps write by themselves (stores, locks, temp files) stays out of `git status`."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.e2e.conftest import commit_clone, copy_project, git_user_env, run
from tweetops.tune.trial_runs import TrialRecorder


@pytest.mark.slow
def test_a_step_and_a_tune_trial_leave_git_status_clean(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "clone")
    env = git_user_env()
    commit_clone(project, env)

    # ingest with MLflow's default store (./mlflow.db, ./mlruns), as the README's first run does
    run(
        [sys.executable, "-m", "tweetops", "ingest", "-S", "ingest.n_tweets=200"],
        cwd=project,
        env=env,
    )
    store = f"sqlite:///{project / 'mlflow.db'}"
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("tweetops")
    assert experiment is not None
    parent = client.create_run(experiment.experiment_id).info.run_id
    # a tune trial takes the SQLite store's lock file (mlflow.db.tweetops.lock) to record itself
    now_ms = int(time.time() * 1000)
    TrialRecorder(store, experiment.experiment_id, parent, "spark_trials")(
        "trial 0", {"train.num_trees": 10}, {"validation_rmse": 1.0}, now_ms - 500, now_ms
    )
    client.set_terminated(parent)

    written = {path.name for path in project.iterdir()}
    assert {"mlflow.db", "mlflow.db.lock", "mlflow.db.tweetops.lock", "data"} <= written
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # ingest declares data/raw as its output (DVC-tracked, ignored by git): nothing is left
    assert status == ""
