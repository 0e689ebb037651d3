"""Tune: Hyperopt trials as nested MLflow runs in a real SQLite store, on real Spark."""

from __future__ import annotations

import json

from mlflow.tracking import MlflowClient

from tests.conftest import Project
from tweetops.dataset import load_training_rows, split_train_test
from tweetops.features import build_features
from tweetops.ingest.step import ingest
from tweetops.spark import build_spark
from tweetops.tune import tune

SMALL = ("ingest.n_tweets=2500", "ingest.n_users=250", "tune.max_evals=3",
         "tune.num_trees=[5,15]", "tune.max_depth=[3,6]")


def test_each_trial_is_a_nested_run_and_the_best_one_is_reported(project: Project) -> None:
    settings = project.settings(*SMALL)
    ingest(settings)
    build_features(settings)
    result = tune(settings)

    client = MlflowClient()
    parent = client.get_run(result.run_id)
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{result.run_id}'")
    assert len(children) == 3
    rmse_by_run = {run.info.run_id: run.data.metrics["validation_rmse"] for run in children}
    assert result.best_trial_run_id == min(rmse_by_run, key=rmse_by_run.get)
    assert result.best_validation_rmse == min(rmse_by_run.values())
    for run in children:
        assert 5 <= int(run.data.params["num_trees"]) <= 15
        assert 3 <= int(run.data.params["max_depth"]) <= 6
        assert run.data.tags["tweetops.step"] == "tune-trial"
    assert {name for name in (run.info.run_name for run in children)} == {
        "trial-000", "trial-001", "trial-002"}

    assert parent.data.params["best.num_trees"] == str(result.best_params["num_trees"])
    assert parent.data.tags["tweetops.data.training.dvc_md5"].endswith(".dir")
    report = json.loads(settings.tune.result_file.read_text())
    assert report["best_params"] == result.best_params
    assert report["best_trial_run_id"] == result.best_trial_run_id

    # fit + validation rows are exactly train's training split: the test rows stay unseen
    spark = build_spark(settings.spark)
    train_split, _test_split = split_train_test(
        load_training_rows(spark, settings.train.training_dir), seed=settings.train.seed,
        test_fraction=settings.train.test_fraction, partitions=settings.train.split_partitions)
    metrics = parent.data.metrics
    assert metrics["fit_rows"] + metrics["validation_rows"] == train_split.count()

    # same seed, same data: the same sequence of trials
    again = tune(settings)
    assert [{k: v for k, v in trial.items() if k != "run_id"} for trial in again.trials] == [
        {k: v for k, v in trial.items() if k != "run_id"} for trial in result.trials]
