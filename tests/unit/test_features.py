"""The pure feature functions on tiny DataFrames, and stream == batch on a real snapshot."""

from __future__ import annotations

import math

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from tests.conftest import Project
from tests.support.frames import assert_same_rows, build_features_batch_for, read_table
from tests.support.tweets import as_lines, raw_frame, tweet
from tweetops.features import (
    author_history,
    build_features,
    parse_tweets,
    rejected_rows,
    training_rows,
    user_features,
    valid_tweets,
)
from tweetops.ingest.step import ingest


def test_user_features_take_the_latest_profile_ties_broken_by_tweet_id(spark: SparkSession) -> None:
    lines = as_lines(
        tweet("10", "a", "2026-10-01T10:00:00.000Z", 100),
        tweet("12", "a", "2026-10-01T12:00:00.000Z", 300),  # same time as 11, higher id: wins
        tweet("11", "a", "2026-10-01T12:00:00.000Z", 200),
        tweet("13", "a", "2026-10-01T09:00:00.000Z", 999, retweet=True),  # older, retweet
        tweet("20", "b", "2026-10-02T08:00:00.000Z", 5000, likes=3),
    )
    users = {
        row["user_id"]: row
        for row in user_features(valid_tweets(parse_tweets(raw_frame(spark, lines)))).collect()
    }
    assert set(users) == {"a", "b"}
    a = users["a"]
    assert a["tweets_seen"] == 4
    assert a["original_tweets"] == 3 and a["retweets_made"] == 1
    assert a["followers_count"] == 300
    assert a["tweet_count"] == 400
    assert a["following_count"] == 10 and a["like_count"] == 5 and a["listed_count"] == 1
    assert str(a["last_tweet_at"]) == "2026-10-01 12:00:00"
    assert str(a["first_tweet_at"]) == "2026-10-01 09:00:00"
    assert users["b"]["verified"] is True and a["verified"] is False
    assert users["b"]["total_engagement"] == 3
    assert users["b"]["mean_engagement"] == pytest.approx(math.log1p(3))


def test_training_rows_exclude_retweets_and_label_is_log1p_of_all_engagement(
    spark: SparkSession,
) -> None:
    lines = as_lines(
        tweet(
            "10",
            "a",
            "2026-10-01T19:30:00.000Z",
            100,
            likes=5,
            retweets=2,
            replies=1,
            quotes=1,
            hashtags=2,
            media=True,
            reply=True,
            text="abcdef",
        ),
        tweet("11", "a", "2026-10-01T20:00:00.000Z", 100, retweet=True, likes=50),
        tweet("12", "b", "2026-10-03T01:00:00.000Z", 7),
    )
    rows = {
        row["tweet_id"]: row
        for row in training_rows(
            author_history(valid_tweets(parse_tweets(raw_frame(spark, lines))))
        ).collect()
    }
    assert set(rows) == {"10", "12"}
    first = rows["10"]
    assert first["engagement"] == pytest.approx(math.log1p(9))
    assert first["hour_of_day"] == 19
    assert first["text_length"] == 6
    assert first["hashtag_count"] == 2
    assert first["has_media"] is True and first["is_reply"] is True and first["is_quote"] is False
    assert first["followers_count"] == 100
    assert first["account_age_days"] == 10
    assert rows["12"]["engagement"] == 0.0


@pytest.mark.slow  # Spark reads a 20 MB line
def test_unreadable_lines_are_rejected_with_a_reason_not_dropped(spark: SparkSession) -> None:
    no_author = tweet("30", "c", "2026-10-01T00:00:00.000Z", 1)
    del no_author["author"]
    bad_time = tweet("31", "c", "yesterday", 1)
    huge = tweet("32", "c", "2026-10-01T00:00:00.000Z", 1)
    huge["text"] = "x" * 20_000_001  # valid JSON, but longer than Spark's JSON reader reads
    lines = [
        *as_lines(tweet("29", "c", "2026-10-01T00:00:00.000Z", 1), no_author, bad_time, huge),
        "{not json",
        "[1, 2]",
    ]
    parsed = parse_tweets(raw_frame(spark, lines)).cache()
    reasons = sorted(row["reject_reason"] for row in rejected_rows(parsed).collect())
    huge_length = len(as_lines(huge)[0])
    assert reasons == sorted(
        [
            "line is a JSON array, not an object",
            f"line is {huge_length} characters, longer than Spark's JSON reader accepts (20000000)",
            "line is not valid JSON",
            "missing author",
            "missing or unreadable created_at",
        ]
    )
    assert [row["tweet_id"] for row in valid_tweets(parsed).collect()] == ["29"]


def test_referenced_tweets_flag_retweets_replies_and_quotes(spark: SparkSession) -> None:
    at = "2026-10-01T00:00:00.000Z"
    cases = {
        "40": [{"type": "retweeted", "id": "1"}],
        "41": [{"type": "quoted", "id": "1"}, {"type": "replied_to", "id": "2"}],
        "42": [],
        "43": None,
        "44": [{"type": None, "id": "1"}, None],  # no type, no reference: no flag
        "45": [None, {"type": "retweeted", "id": "1"}],
    }
    tweets = []
    for tweet_id, references in cases.items():
        record = tweet(tweet_id, "c", at, 1)
        record["referenced_tweets"] = references
        tweets.append(record)
    parsed = valid_tweets(parse_tweets(raw_frame(spark, as_lines(*tweets))))
    flags = {
        row["tweet_id"]: (row["is_retweet"], row["is_reply"], row["is_quote"])
        for row in parsed.collect()
    }
    assert flags == {
        "40": (True, False, False),
        "41": (False, True, True),
        "42": (False, False, False),
        "43": (False, False, False),
        "44": (False, False, False),
        "45": (True, False, False),
    }


@pytest.mark.slow  # a streaming job over four micro-batches
def test_streaming_job_equals_batch_job(project: Project, spark: SparkSession) -> None:
    settings = project.settings(
        "ingest.n_tweets=1500",
        "ingest.n_users=150",
        "ingest.tweets_per_file=400",
        "features.max_files_per_trigger=1",
    )
    ingest(settings)
    result = build_features(settings)
    assert result.micro_batches == 4  # 1500 tweets in 4 part files, one file per trigger
    assert result.input_rows == 1500
    assert result.rejected == 0 and result.late == 0

    config = settings.features
    batch = build_features_batch_for(spark, config)
    assert result.users == batch.users.count()
    assert result.training_rows == batch.training.count() > 0
    assert result.activity_rows == batch.activity.count() > 0
    assert_same_rows(read_table(spark, config.users_dir), batch.users)
    assert_same_rows(read_table(spark, config.training_rows_dir), batch.training)
    assert_same_rows(read_table(spark, config.user_activity_dir), batch.activity)
    # the point-in-time columns are real history, not defaults everywhere
    assert batch.training.where(F.col("author_has_history")).count() > 0


@pytest.mark.slow  # two streaming runs and a batch job
def test_incremental_run_reads_only_new_part_files(project: Project, spark: SparkSession) -> None:
    base = ("ingest.n_users=100", "ingest.tweets_per_file=500", "features.incremental=true")
    ingest(project.settings(*base, "ingest.n_tweets=500"))
    first = build_features(project.settings(*base))
    # a second batch, appended under another batch id (another seed), after the first in time
    ingest(
        project.settings(
            *base,
            "ingest.n_tweets=500",
            "ingest.seed=43",
            "ingest.mode=append",
            "ingest.synthetic_start_time=2026-10-20T00:00:00Z",
        )
    )
    settings = project.settings(*base)
    second = build_features(settings)
    assert first.input_rows == 500
    assert second.input_rows == 500  # only the new file was read
    # the aggregation state carried over: the tables equal one batch job over both files
    config = settings.features
    batch = build_features_batch_for(spark, config)
    assert second.users == batch.users.count()
    assert_same_rows(read_table(spark, config.users_dir), batch.users)
    assert_same_rows(read_table(spark, config.training_rows_dir), batch.training)
    # the twin counts both batches' tweets: a run that lost the state would count 500
    assert batch.users.agg(F.sum("tweets_seen")).first()[0] == 1000
