"""Author history (point in time) and activity windows on tiny DataFrames, compared whole."""

from __future__ import annotations

import math
from datetime import datetime

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from tests.conftest import PARAMS_FILE
from tests.support.frames import assert_same_rows
from tests.support.tweets import as_lines, raw_frame, tweet
from tweetops.errors import TweetopsError
from tweetops.features import author_history, parse_tweets, user_activity, valid_tweets
from tweetops.schema import AUTHOR_HISTORY_COLUMNS
from tweetops.settings import load_settings


def tweets_of(spark: SparkSession, *records: dict) -> DataFrame:
    return valid_tweets(parse_tweets(raw_frame(spark, as_lines(*records))))


def test_author_history_counts_only_tweets_strictly_before_each_tweet(spark: SparkSession) -> None:
    frame = tweets_of(
        spark,
        tweet("1", "a", "2026-10-01T10:00:00.000Z", 100, likes=9),
        tweet("2", "a", "2026-10-01T11:00:00.000Z", 100, likes=99),
        # same instant as 2: neither sees the other (a leak would put log1p(99) into 3's mean)
        tweet("3", "a", "2026-10-01T11:00:00.000Z", 100),
        tweet("4", "a", "2026-10-03T10:00:00.000Z", 100, retweet=True),
        tweet("5", "a", "2026-10-09T11:00:00.000Z", 100, likes=5000),
        tweet("6", "b", "2026-10-01T10:30:00.000Z", 100, likes=7),
    )
    got = author_history(frame).select("tweet_id", *AUTHOR_HISTORY_COLUMNS)
    mean_three = (math.log1p(9) + math.log1p(99) + math.log1p(0)) / 3
    expected = spark.createDataFrame(
        [
            ("1", 0, 0, 0.0, False, -1.0),
            ("2", 1, 1, math.log1p(9), True, 1 / 24),
            ("3", 1, 1, math.log1p(9), True, 1 / 24),
            ("4", 0, 3, mean_three, True, 2 - 1 / 24),
            ("5", 0, 1, mean_three, True, 6 + 1 / 24),  # the retweet: a tweet, not in the mean
            ("6", 0, 0, 0.0, False, -1.0),
        ],
        got.schema,
    )
    assert_same_rows(got, expected)


@pytest.mark.slow  # make check keeps the strictly-before history test
def test_author_history_ignores_later_tweets(spark: SparkSession) -> None:
    early = [
        tweet("1", "a", "2026-10-01T10:00:00.000Z", 100, likes=3),
        tweet("2", "a", "2026-10-01T12:00:00.000Z", 100),
    ]
    alone = author_history(tweets_of(spark, *early))
    later = author_history(
        tweets_of(spark, *early, tweet("9", "a", "2026-10-01T13:00:00.000Z", 100, likes=10_000))
    )
    columns = ("tweet_id", *AUTHOR_HISTORY_COLUMNS)
    assert_same_rows(later.where(F.col("tweet_id") != "9").select(*columns), alone.select(*columns))


@pytest.mark.slow  # make check keeps the sliding windows (tumbling is their special case)
def test_user_activity_per_tumbling_window_with_follower_growth(spark: SparkSession) -> None:
    frame = tweets_of(
        spark,
        tweet("1", "a", "2026-10-01T10:05:00.000Z", 100, likes=3),
        tweet("2", "a", "2026-10-01T10:40:00.000Z", 120, retweet=True),
        tweet("3", "a", "2026-10-01T11:10:00.000Z", 130),
        tweet("4", "b", "2026-10-01T10:50:00.000Z", 7, likes=1),
    )
    got = user_activity(frame, "1 hour")
    hour = [datetime(2026, 10, 1, h) for h in (10, 11, 12)]
    expected = spark.createDataFrame(
        [
            ("a", hour[0], hour[1], 2, 1, 1, 3, math.log1p(3), 100, 120, 20),
            ("a", hour[1], hour[2], 1, 1, 0, 0, 0.0, 130, 130, 0),
            ("b", hour[0], hour[1], 1, 1, 0, 1, math.log1p(1), 7, 7, 0),
        ],
        got.schema,
    )
    assert_same_rows(got, expected)


def test_user_activity_sliding_windows_overlap(spark: SparkSession) -> None:
    frame = tweets_of(spark, tweet("1", "a", "2026-10-01T10:40:00.000Z", 100))
    got = user_activity(frame, "1 hour", "30 minutes").select("window_start", "tweets")
    expected = spark.createDataFrame(
        [(datetime(2026, 10, 1, 10, 0), 1), (datetime(2026, 10, 1, 10, 30), 1)], got.schema
    )
    assert_same_rows(got, expected)


def test_a_watermark_that_is_not_a_duration_is_one_sentence() -> None:
    assert (
        load_settings(PARAMS_FILE, ["features.watermark=10 minutes"]).features.watermark
        == "10 minutes"
    )
    with pytest.raises(TweetopsError, match=r"^Setting features.watermark='soon' is invalid"):
        load_settings(PARAMS_FILE, ["features.watermark=soon"])
