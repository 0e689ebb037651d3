"""`tweetops reproduce`: a logged train run trained again from its lineage, on real stores."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import TEST_SPARK_OVERRIDES, Project
from tweetops.errors import TweetopsError
from tweetops.features import build_features
from tweetops.ingest.step import ingest
from tweetops.reproduce import REPRODUCED_TAG, reproduce
from tweetops.tracking import dvc_hash
from tweetops.train import train

pytestmark = pytest.mark.slow

SMALL = ("ingest.n_tweets=600", "ingest.n_users=80", "train.num_trees=12", "train.max_depth=5")


def _dvc(root: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, check=True, capture_output=True)


def test_a_run_is_reproduced_to_identical_metrics_with_its_data_from_the_dvc_cache(
    project: Project,
) -> None:
    settings = project.settings(*SMALL)
    ingest(settings)
    build_features(settings)
    training = settings.train.training_rows_dir
    _dvc(project.root, "init", "--no-scm", "-q")
    _dvc(project.root, "add", "-q", str(training))
    original = train(settings)
    recorded = dvc_hash(training)

    # the workspace moves on: one part file of the training rows is gone
    next(training.rglob("*.parquet")).unlink()
    assert dvc_hash(training) != recorded

    result = reproduce(original.run_id, project.root / "params.yaml", list(TEST_SPARK_OVERRIDES))

    client = MlflowClient()
    new_run = client.get_run(result.run_id)
    assert result.run_id != original.run_id
    assert new_run.data.tags[REPRODUCED_TAG] == original.run_id
    assert new_run.data.params["train.num_trees"] == "12"
    assert new_run.data.params["train.max_depth"] == "5"
    assert "checked out of the DVC cache" in result.data_source
    rmse = next(item for item in result.comparisons if item.name == "rmse")
    assert rmse.original == original.metrics["rmse"]
    assert rmse.reproduced == original.metrics["rmse"]
    assert all(item.same for item in result.comparisons), result.table()
    assert {"rmse", "r2", "baseline_rmse", "test_rows"} <= {i.name for i in result.comparisons}
    comparison = project.root / "reports" / "reproduce" / original.run_id / "comparison.json"
    assert comparison.is_file()
    assert not (project.root / "reports" / "train_run.json").read_text().count(result.run_id)

    # without the version in the cache, reproduce says what to run
    shutil.rmtree(project.root / ".dvc" / "cache")
    with pytest.raises(TweetopsError, match="run `dvc checkout` \\(or `dvc pull`\\)"):
        reproduce(original.run_id, project.root / "params.yaml", list(TEST_SPARK_OVERRIDES))
