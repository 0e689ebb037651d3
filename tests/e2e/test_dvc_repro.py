"""`dvc repro` runs the chain in a git clone; a second `dvc repro` does nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.e2e.conftest import DVC, commit_clone, copy_project, git_user_env, run

pytestmark = pytest.mark.slow

STAGES = ("ingest", "features", "train", "promote")


def test_dvc_repro_runs_the_chain_once(tmp_path: Path) -> None:
    project = copy_project(
        tmp_path / "tweetops", ingest={"n_tweets": 2000, "n_users": 200}, train={"num_trees": 10}
    )
    env = git_user_env()
    commit_clone(project, env)

    first = run([*DVC, "repro"], cwd=project, env=env)
    for stage in STAGES:
        assert f"Running stage '{stage}'" in first.stdout
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    assert set(lock["stages"]) == set(STAGES)
    raw_out = lock["stages"]["ingest"]["outs"][0]
    assert raw_out["path"] == "data/raw" and raw_out["md5"].endswith(".dir")
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    assert metrics["rmse"] < metrics["baseline_rmse"]
    promotion = json.loads((project / "reports" / "promotion.json").read_text())
    assert promotion["promoted"] is True

    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tweetops")
    runs_after_first = len(client.search_runs([experiment.experiment_id]))
    assert runs_after_first == len(STAGES)
    train_run = client.get_run(
        json.loads((project / "reports/train_run.json").read_text())["run_id"]
    )
    # the run records the git commit of the clone and the DVC hash of the data it read
    head = run(["git", "rev-parse", "HEAD"], cwd=project, env=env).stdout.strip()
    assert train_run.data.tags["tweetops.git_commit"] == head
    features_out = lock["stages"]["train"]["deps"]
    training_dep = next(dep for dep in features_out if dep["path"] == "data/features/training")
    assert train_run.data.tags["tweetops.data.training.dvc_md5"] == training_dep["md5"]

    second = run([*DVC, "repro"], cwd=project, env=env)
    assert "Running stage" not in second.stdout
    assert "up to date" in second.stdout
    assert len(client.search_runs([experiment.experiment_id])) == runs_after_first

    # a param change reruns from the stage that reads it, and nothing before it
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["num_trees"] = 12
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    third = run([*DVC, "repro"], cwd=project, env=env)
    assert "Running stage 'train'" in third.stdout
    assert "Running stage 'promote'" in third.stdout
    assert "Running stage 'ingest'" not in third.stdout
    assert "Running stage 'features'" not in third.stdout
