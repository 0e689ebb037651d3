"""One features job at a time per checkpoint: a second one refuses before touching the tables."""

from __future__ import annotations

import pytest
from filelock import FileLock
from pyspark.sql import SparkSession

from tests.conftest import FeaturedProject
from tweetops import locks
from tweetops.errors import TweetopsError
from tweetops.features import stream_feature_tables
from tweetops.features.step import table_folders
from tweetops.markers import require_complete


def test_a_second_features_job_on_the_checkpoint_refuses_and_keeps_the_tables_marked(
    featured_project: FeaturedProject, spark: SparkSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = featured_project.settings().features
    monkeypatch.setattr(locks, "LOCK_WAIT_S", 0.2)
    # the test holds the lock as a first features job would: a fixed interleaving, no race
    with (
        FileLock(str(locks.lock_path("features", config.checkpoint_dir))),
        pytest.raises(TweetopsError, match=r"^Another `tweetops features` held the lock of .*"),
    ):
        stream_feature_tables(spark, config)
    for folder in table_folders(config):  # the first job's tables, still whole and marked
        require_complete(folder, produced_by="features")
