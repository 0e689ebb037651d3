"""The batch twin of the streaming job: the same pure functions over the whole snapshot."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from tweetops.features.parse import parse_tweets, valid_tweets
from tweetops.features.tables import (
    EVENT_MS,
    author_history,
    closed_rows,
    closed_windows,
    duration_ms,
    training_rows,
    user_activity,
    user_features,
    with_event_ms,
)
from tweetops.ingest.snapshot import PART_SUFFIX
from tweetops.schema import CORRUPT_RECORD_COLUMN, RAW_TWEET_SCHEMA
from tweetops.spark import spark_path


class FeatureTables(NamedTuple):
    """The three feature tables."""

    users: DataFrame
    training: DataFrame
    activity: DataFrame


def read_raw_batch(spark: SparkSession, raw_dir: Path) -> DataFrame:
    """The raw snapshot as a batch DataFrame with the explicit schema."""
    return (
        spark.read.schema(RAW_TWEET_SCHEMA)
        .option("pathGlobFilter", f"*{PART_SUFFIX}")
        .option("columnNameOfCorruptRecord", CORRUPT_RECORD_COLUMN)
        .json(spark_path(raw_dir))
    )


def build_features_batch(
    spark: SparkSession,
    raw_dir: Path,
    *,
    watermark: str = "1 hour",
    activity_window: str = "1 hour",
    activity_slide: str | None = None,
    flush_at_end: bool = False,
    label_min_age: str | None = None,
) -> FeatureTables:
    """Batch twin of the streaming job: the three tables of the snapshot in `raw_dir`.

    Tweets are deduplicated by id; training rows and activity windows are those closed under
    the final watermark (latest `created_at` minus `watermark`), as the stream emits them;
    with `flush_at_end`, all of them, as a one-shot run that flushes emits them. Tweets
    fetched less than `label_min_age` after they were posted are no training rows.
    """
    tweets = with_event_ms(
        valid_tweets(parse_tweets(read_raw_batch(spark, raw_dir)))
    ).dropDuplicates(["tweet_id"])
    latest = tweets.agg(F.max(EVENT_MS)).collect()[0][0]
    closed_ms = (latest - duration_ms(watermark)) if latest is not None else 0
    if flush_at_end:
        closed_ms = 1 << 62
    min_age_ms = duration_ms(label_min_age) if label_min_age else None
    training = training_rows(closed_rows(author_history(tweets), None, closed_ms), min_age_ms)
    activity = closed_windows(
        user_activity(tweets, activity_window, activity_slide), None, closed_ms
    )
    return FeatureTables(user_features(tweets), training, activity)
