"""Expectations on the training table the features step wrote for the small project.

Made-With-ML's `tests/data`: what every training table must satisfy whatever the code did to
make it. Each expectation is one query over the whole table; a failure names the offending rows.
"""

from __future__ import annotations

import pytest
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from tests.conftest import TrainedProject
from tweetops.schema import (
    LABEL_COLUMN,
    MODEL_INPUT_COLUMNS,
    NO_HISTORY_MEAN_ENGAGEMENT,
    NO_PREVIOUS_TWEET_DAYS,
    PROFILE_COLUMNS,
    TRAINING_KEY_COLUMNS,
)
from tweetops.spark import spark_path

pytestmark = pytest.mark.slow  # the small project is built (ingest, features, train) once

COUNT_COLUMNS = (
    "text_length",
    "hashtag_count",
    "mention_count",
    "url_count",
    *PROFILE_COLUMNS,
    "account_age_days",
    "author_tweets_24h",
    "author_tweets_7d",
)


@pytest.fixture(scope="module")
def table(spark: SparkSession, trained_project_template: TrainedProject) -> DataFrame:
    settings = trained_project_template.settings()
    folder = trained_project_template.root / settings.train.training_rows_dir
    return spark.read.parquet(spark_path(folder)).cache()


def _offending(table: DataFrame, condition: Column) -> list[dict[str, object]]:
    return [row.asDict() for row in table.where(condition).limit(5).collect()]


def test_the_table_has_the_model_inputs_the_keys_and_the_label(table: DataFrame) -> None:
    assert {*TRAINING_KEY_COLUMNS, *MODEL_INPUT_COLUMNS, LABEL_COLUMN} <= set(table.columns)
    assert table.count() > 500  # of 1000 tweets, a quarter are retweets (not training rows)


def test_tweet_id_is_unique(table: DataFrame) -> None:
    duplicated = table.groupBy("tweet_id").count().where(F.col("count") > 1)
    assert duplicated.limit(5).collect() == []


def test_no_model_input_key_or_label_is_null(table: DataFrame) -> None:
    for column in (*TRAINING_KEY_COLUMNS, *MODEL_INPUT_COLUMNS, LABEL_COLUMN):
        assert _offending(table, F.col(column).isNull()) == [], column


def test_the_label_is_a_finite_log_count_at_least_zero(table: DataFrame) -> None:
    label = F.col(LABEL_COLUMN)
    assert _offending(table, (label < 0) | F.isnan(label)) == []
    assert table.where(label > 0).count() > 0  # not all zero: something to learn


def test_counts_are_not_negative_and_hours_are_hours(table: DataFrame) -> None:
    for column in COUNT_COLUMNS:
        assert _offending(table, F.col(column) < 0) == [], column
    assert _offending(table, ~F.col("hour_of_day").between(0, 23)) == []


def test_the_author_history_columns_agree_with_each_other(table: DataFrame) -> None:
    first_tweet = F.col("days_since_author_previous_tweet") == NO_PREVIOUS_TWEET_DAYS
    # a first tweet of its author: no history of any kind, the documented defaults
    assert (
        _offending(
            table,
            first_tweet
            & (
                (F.col("author_tweets_24h") != 0)
                | (F.col("author_tweets_7d") != 0)
                | F.col("author_has_history")
            ),
        )
        == []
    )
    # no previous original tweet: the documented mean
    assert (
        _offending(
            table,
            ~F.col("author_has_history")
            & (F.col("author_mean_engagement") != NO_HISTORY_MEAN_ENGAGEMENT),
        )
        == []
    )
    assert _offending(table, ~first_tweet & (F.col("days_since_author_previous_tweet") <= 0)) == []
    assert _offending(table, F.col("author_tweets_24h") > F.col("author_tweets_7d")) == []
    assert table.where(F.col("author_has_history")).count() > 0  # history is not all defaults


def test_every_row_belongs_to_a_user_of_the_user_table(
    spark: SparkSession, table: DataFrame, trained_project_template: TrainedProject
) -> None:
    settings = trained_project_template.settings()
    users = spark.read.parquet(
        spark_path(trained_project_template.root / settings.features.users_dir)
    )
    orphans = table.join(users, "user_id", "left_anti")
    assert orphans.select("tweet_id", "user_id").limit(5).collect() == []
