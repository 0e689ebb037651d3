"""One features job at a time per checkpoint, and a job cut short in its flush: tables honest."""

from __future__ import annotations

import pytest
from filelock import FileLock
from pyspark.sql import SparkSession

from tests.conftest import FeaturedProject, Project
from tests.support.frames import assert_same_rows, build_features_batch_for, read_table
from tweetops import locks
from tweetops.errors import TweetopsError
from tweetops.features import stream_feature_tables
from tweetops.features.step import table_folders
from tweetops.features.stream import FeatureStream
from tweetops.ingest.step import ingest
from tweetops.markers import require_complete


@pytest.mark.slow
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


class _Killed(BaseException):
    """Stands for SIGKILL inside this process: nothing after it runs, no handler sees it."""


@pytest.mark.slow
def test_a_run_cut_short_in_the_end_of_run_flush_leaves_tables_unmarked_then_whole(
    project: Project, spark: SparkSession
) -> None:
    # incremental: the rerun keeps the checkpoint, so it must take back what the flush wrote
    settings = project.settings(
        "ingest.n_tweets=400",
        "ingest.n_users=40",
        "features.incremental=true",
        "features.label_min_age=null",
    )
    ingest(settings)
    config = settings.features
    flush = FeatureStream.flush

    def die(*_: object) -> None:
        raise _Killed

    with pytest.MonkeyPatch.context() as patch:

        def flush_then_die(self: FeatureStream, session: SparkSession) -> object:
            # die after the flush wrote its training rows, before its activity windows
            patch.setattr(FeatureStream, "_write_activity", die)
            return flush(self, session)

        patch.setattr(FeatureStream, "flush", flush_then_die)
        with pytest.raises(_Killed):
            stream_feature_tables(spark, config)
    flushed = config.checkpoint_dir / "flush.json"
    assert flushed.is_file()  # the flush had begun: training rows written, windows not
    for folder in table_folders(config):  # honest: no table says it is complete
        with pytest.raises(TweetopsError, match="incomplete"):
            require_complete(folder, produced_by="features")

    result = stream_feature_tables(spark, config)

    assert result.flushed > 0 and result.micro_batches == 0  # nothing read twice
    for folder in table_folders(config):
        require_complete(folder, produced_by="features")
    twin = build_features_batch_for(spark, config)  # no flushed row twice, none missing
    assert_same_rows(read_table(spark, config.training_rows_dir), twin.training)
    assert_same_rows(read_table(spark, config.user_activity_dir), twin.activity)
