"""Column contracts shared by the steps: the raw JSONL schema and the model's input columns."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
)

CORRUPT_RECORD_COLUMN = "_corrupt_record"
# Spark's JSON reader (Jackson) refuses strings longer than this; a longer line lands in
# `_corrupt_record` although it may well be JSON
SPARK_JSON_MAX_STRING = 20_000_000


def corrupt_line_reason(raw_line: Column) -> Column:
    """Why Spark could not read a raw line (its `_corrupt_record`) as a normalized tweet.

    Too long for Spark's JSON reader, not JSON at all, JSON but not an object, or an object
    whose fields do not have the types of :data:`RAW_TWEET_SCHEMA`.
    """
    parsed = F.try_parse_json(raw_line)
    length = F.length(raw_line)
    return (
        F.when(
            length > SPARK_JSON_MAX_STRING,
            F.concat(
                F.lit("line is "),
                length.cast("string"),
                F.lit(
                    f" characters, longer than Spark's JSON reader accepts "
                    f"({SPARK_JSON_MAX_STRING})"
                ),
            ),
        )
        .when(parsed.isNull(), F.lit("line is not valid JSON"))
        .when(
            ~F.schema_of_variant(parsed).startswith("OBJECT"),
            F.concat(
                F.lit("line is a JSON "),
                F.lower(F.split(F.schema_of_variant(parsed), "<")[0]),
                F.lit(", not an object"),
            ),
        )
        .otherwise(F.lit("line is a JSON object whose fields do not have a tweet's types"))
    )


def _struct(*fields: tuple[str, object]) -> StructType:
    return StructType([StructField(name, dtype, True) for name, dtype in fields])  # type: ignore[arg-type]


_ENTITY = (("start", IntegerType()), ("end", IntegerType()))

# The normalized record of tweetops.ingest.record, as Spark reads it (explicit: a streaming
# source must not infer). A line that does not parse lands in `_corrupt_record`.
RAW_TWEET_SCHEMA = _struct(
    ("id", StringType()),
    ("created_at", StringType()),
    ("text", StringType()),
    ("lang", StringType()),
    ("author_id", StringType()),
    (
        "public_metrics",
        _struct(
            ("retweet_count", LongType()),
            ("reply_count", LongType()),
            ("like_count", LongType()),
            ("quote_count", LongType()),
        ),
    ),
    (
        "entities",
        _struct(
            ("hashtags", ArrayType(_struct(*_ENTITY, ("tag", StringType())))),
            ("mentions", ArrayType(_struct(*_ENTITY, ("username", StringType())))),
            (
                "urls",
                ArrayType(_struct(*_ENTITY, ("url", StringType()), ("expanded_url", StringType()))),
            ),
        ),
    ),
    ("attachments", _struct(("media_keys", ArrayType(StringType())))),
    ("referenced_tweets", ArrayType(_struct(("type", StringType()), ("id", StringType())))),
    (
        "author",
        _struct(
            ("id", StringType()),
            ("username", StringType()),
            ("created_at", StringType()),
            ("verified", BooleanType()),
            (
                "public_metrics",
                _struct(
                    ("followers_count", LongType()),
                    ("following_count", LongType()),
                    ("tweet_count", LongType()),
                    ("listed_count", LongType()),
                    ("like_count", LongType()),
                ),
            ),
        ),
    ),
    ("fetched_at", StringType()),
    (CORRUPT_RECORD_COLUMN, StringType()),
)

# The author's profile metrics, under the names of the record's `author.public_metrics` (X API
# v2), from ingest to the served model. The lecture's v1.1 names map onto them: friends_count is
# following_count, statuses_count is tweet_count, favourites_count is like_count.
PROFILE_COLUMNS = (
    "followers_count",
    "following_count",
    "tweet_count",
    "like_count",
    "listed_count",
)

# The author's history strictly before the tweet (point in time: nothing from the tweet itself or
# later tweets): tweets of any kind in the previous 24 h and 7 d, the mean log-engagement
# (log1p) of the author's previous original tweets (NO_HISTORY_MEAN_ENGAGEMENT when there are
# none, with author_has_history false), days since the author's previous tweet of any kind
# (NO_PREVIOUS_TWEET_DAYS when there is none).
AUTHOR_HISTORY_COLUMNS = (
    "author_tweets_24h",
    "author_tweets_7d",
    "author_mean_engagement",
    "author_has_history",
    "days_since_author_previous_tweet",
)
NO_HISTORY_MEAN_ENGAGEMENT = 0.0
NO_PREVIOUS_TWEET_DAYS = -1.0

LABEL_COLUMN = "engagement"
CATEGORICAL_FEATURES = ("lang",)
NUMERIC_FEATURES = (
    "hour_of_day",
    "text_length",
    "hashtag_count",
    "mention_count",
    "url_count",
    "has_media",
    "is_reply",
    "is_quote",
    *PROFILE_COLUMNS,
    "verified",
    "account_age_days",
    *AUTHOR_HISTORY_COLUMNS,
)
# What the served model takes: one row per tweet, raw (unindexed, unassembled) columns.
MODEL_INPUT_COLUMNS = (*CATEGORICAL_FEATURES, *NUMERIC_FEATURES)
# Identity and time columns a training row carries besides the label and the model's inputs.
TRAINING_KEY_COLUMNS = ("tweet_id", "user_id", "created_at")
# Hours from created_at to fetched_at: how long the label's engagement had to accrue (null when
# the source does not say). It qualifies the label, so it filters training rows
# (features.label_min_age) and is not a model input: a tweet being scored has no fetch time.
LABEL_AGE_COLUMN = "age_at_fetch_hours"
