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
NOT_UTF8_REASON = "line has bytes that are not UTF-8 (the line as it was is in raw_line_base64)"
NUL_REASON = "line has a NUL byte that is not escaped as \\u0000"


def corrupt_line_reason(raw_line: Column) -> Column:
    """Why Spark could not read a raw line (its `_corrupt_record`) as a normalized tweet.

    Too long for Spark's JSON reader, bytes that are not UTF-8, a raw NUL byte, not JSON at
    all, JSON but not an object, or an object whose fields do not have the types of
    :data:`RAW_TWEET_SCHEMA`. `raw_line` holds the line's bytes as they were.
    """
    parsed = F.try_parse_json(raw_line)
    length = F.length(raw_line)
    reason = (
        F.when(~F.is_valid_utf8(raw_line), F.lit(NOT_UTF8_REASON))
        .when(F.instr(raw_line, "\x00") > 0, F.lit(NUL_REASON))
        .when(
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
    )
    # a count beyond a long fails Spark's reader for the whole line: name it as ingest does
    for path in COUNT_PATHS:
        reason = reason.when(
            F.try_variant_get(parsed, f"$.{path}", "decimal(38,0)") > F.lit(MAX_COUNT),
            F.lit(count_reason(path)),
        )
    return reason.otherwise(F.lit("line is a JSON object whose fields do not have a tweet's types"))


# Every count of the record, as a JSON path (ingest names them the same way)
COUNT_PATHS = (
    *(
        f"public_metrics.{name}"
        for name in ("retweet_count", "reply_count", "like_count", "quote_count")
    ),
    *(
        f"author.public_metrics.{name}"
        for name in (
            "followers_count",
            "following_count",
            "tweet_count",
            "listed_count",
            "like_count",
        )
    ),
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

# Limits the X API defines and real tweets never pass: ids are strings of at most 19 digits and
# counts signed 64-bit integers; a post holds at most 25,000 characters and a few entities.
MAX_ID_DIGITS = 19
MAX_COUNT = 2**63 - 1
MAX_TEXT_CHARS = 25_000
MAX_ENTITIES = 1_000  # per kind: hashtags, mentions, urls

# The first tweet was posted on 2006-03-21: a tweet or an account dated earlier cannot be real.
PLATFORM_START = "2006-03-21T00:00:00Z"
PLATFORM_START_DATE = PLATFORM_START[:10]


# pydantic's words, which ingest gives for such a record
TEXT_REASON = f"text: String should have at most {MAX_TEXT_CHARS} characters"


def id_reason(field: str) -> str:
    """Why an id is refused, the same words at ingest and in features."""
    return f"{field} must be a string of 1 to {MAX_ID_DIGITS} digits, at most {MAX_COUNT}"


def count_reason(field: str) -> str:
    """Why a count is refused, the same words at ingest and in features."""
    return f"{field} must be a whole number from 0 to {MAX_COUNT} (2^63-1)"


def before_platform_reason(field: str) -> str:
    """Why a timestamp earlier than the platform is refused."""
    return f"{field} is before the platform existed ({PLATFORM_START_DATE})"


BEFORE_ACCOUNT_REASON = "created_at is before the author's account was created (author.created_at)"


def future_reason(max_clock_skew: str) -> str:
    """Why a tweet dated after the processing time plus the allowed clock skew is refused."""
    return f"created_at is later than now + ingest.max_clock_skew ({max_clock_skew})"


# The values each numeric model input can take, (lowest, highest), None where unbounded: ingest
# and features only produce values inside (a tweet is never older than its account, so
# account_age_days >= 0), and the served model refuses a value outside with HTTP 400.
# days_since_author_previous_tweet is NO_PREVIOUS_TWEET_DAYS (-1) when there is no previous tweet.
INPUT_RANGES: dict[str, tuple[float | None, float | None]] = {
    "hour_of_day": (0, 23),
    "text_length": (0, MAX_TEXT_CHARS),
    "hashtag_count": (0, MAX_ENTITIES),
    "mention_count": (0, MAX_ENTITIES),
    "url_count": (0, MAX_ENTITIES),
    **{name: (0, MAX_COUNT) for name in PROFILE_COLUMNS},
    "account_age_days": (0, None),
    "author_tweets_24h": (0, None),
    "author_tweets_7d": (0, None),
    "author_mean_engagement": (0, None),
    "days_since_author_previous_tweet": (NO_PREVIOUS_TWEET_DAYS, None),
}
# Identity and time columns a training row carries besides the label and the model's inputs.
TRAINING_KEY_COLUMNS = ("tweet_id", "user_id", "created_at")
# Hours from created_at to fetched_at: how long the label's engagement had to accrue (null when
# the source does not say). It qualifies the label, so it filters training rows
# (features.label_min_age) and is not a model input: a tweet being scored has no fetch time.
LABEL_AGE_COLUMN = "age_at_fetch_hours"
