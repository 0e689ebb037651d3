"""When every SparkTrials trial fails, tune says why in the first trial's own words."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from pyspark.sql import SparkSession

from tests.conftest import Project
from tweetops.dataset import load_training_rows
from tweetops.errors import TweetopsError
from tweetops.features import build_features
from tweetops.ingest.step import ingest
from tweetops.tune.step import search
from tweetops.tune.trial_runs import TrialRecorder

pytestmark = pytest.mark.slow


def test_a_search_whose_trials_all_fail_quotes_the_first_trials_error(
    project: Project, spark: SparkSession, tmp_path: Path
) -> None:
    settings = project.settings(
        "ingest.n_tweets=400", "ingest.n_users=60", "tune.max_evals=2", "tune.parallelism=1"
    )
    ingest(settings)
    build_features(settings)
    rows = load_training_rows(spark, settings.train.training_rows_dir)
    # a node's own empty store, as on a cluster whose workers cannot see the driver's SQLite
    node_store = f"sqlite:///{tmp_path / 'node-mlflow.db'}"
    MlflowClient(node_store).search_experiments()
    recorder = TrialRecorder(
        tracking_uri=node_store, experiment_id="1", parent_run_id="p", backend="spark_trials"
    )

    with pytest.raises(TweetopsError) as refused:
        search(rows, settings.tune, settings.train, recorder)

    message = str(refused.value)
    assert message.startswith("All 2 tune trials failed, the first with ")
    assert "No Experiment with id=1 exists" in message
    assert "no evaluation tasks" not in message
