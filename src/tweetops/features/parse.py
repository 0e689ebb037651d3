"""Parsing and validating raw normalized records: pure `DataFrame -> DataFrame` functions."""

from __future__ import annotations

import operator
from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from tweetops.schema import (
    BEFORE_ACCOUNT_REASON,
    CORRUPT_RECORD_COLUMN,
    MAX_TEXT_CHARS,
    PLATFORM_START,
    PROFILE_COLUMNS,
    TEXT_REASON,
    before_platform_reason,
    corrupt_line_reason,
    future_reason,
    id_reason,
)

API_TIME_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSSX"
TWEET_METRICS = ("retweet_count", "reply_count", "like_count", "quote_count")


def _api_time(column: Column) -> Column:
    return F.try_to_timestamp(column, F.lit(API_TIME_FORMAT))


def _count(array: Column) -> Column:
    return F.coalesce(F.size(array), F.lit(0)).cast("long")


def _references(kind: str) -> Column:
    # `array_contains` over the array of types is `exists(ref -> ref.type = kind)` with the
    # same three-valued logic (a null type or reference and no match: null, so false here),
    # but compiled: a lambda is interpreted row by row
    return F.coalesce(F.array_contains(F.col("referenced_tweets.type"), F.lit(kind)), F.lit(False))


def parse_tweets(raw: DataFrame, max_clock_skew: str | None = None) -> DataFrame:
    """Flatten raw normalized records into one typed row per tweet (invalid rows kept, flagged).

    The tweet's own public metrics are summed into `engagement_total`; the author's profile
    metrics keep their record names (:data:`~tweetops.schema.PROFILE_COLUMNS`). Times that cannot
    be real are flagged with ingest's reasons: before the platform or the author's account, or
    (given `max_clock_skew`, a duration) later than the processing time plus the skew, so that
    no such row can move the watermark.
    """
    author_metrics = F.col("author.public_metrics")
    metrics = F.col("public_metrics")
    engagement_total = sum(
        (F.coalesce(metrics[name], F.lit(0)) for name in TWEET_METRICS), F.lit(0).cast("long")
    )
    parsed = raw.select(
        F.col("id").alias("tweet_id"),
        F.col("id").try_cast("long").alias("tweet_id_num"),
        F.col("author.id").alias("user_id"),
        F.col("author.username").alias("username"),
        _api_time(F.col("created_at")).alias("created_at"),
        _api_time(F.col("author.created_at")).alias("account_created_at"),
        F.coalesce(F.col("lang"), F.lit("und")).alias("lang"),
        F.coalesce(F.length("text"), F.lit(0)).cast("long").alias("text_length"),
        _count(F.col("entities.hashtags")).alias("hashtag_count"),
        _count(F.col("entities.mentions")).alias("mention_count"),
        _count(F.col("entities.urls")).alias("url_count"),
        (_count(F.col("attachments.media_keys")) > 0).alias("has_media"),
        _references("retweeted").alias("is_retweet"),
        _references("replied_to").alias("is_reply"),
        _references("quoted").alias("is_quote"),
        engagement_total.alias("engagement_total"),
        *(author_metrics[name].alias(name) for name in PROFILE_COLUMNS if name != "like_count"),
        F.coalesce(author_metrics["like_count"], F.lit(0)).alias("like_count"),
        F.coalesce(F.col("author.verified"), F.lit(False)).alias("verified"),
        _api_time(F.col("fetched_at")).alias("fetched_at"),
        F.col(CORRUPT_RECORD_COLUMN).alias("raw_line"),
    )
    missing_profile = reduce(operator.or_, (F.col(name).isNull() for name in PROFILE_COLUMNS))
    platform_start = _api_time(F.lit(PLATFORM_START.replace("Z", ".000Z")))
    latest = (
        F.current_timestamp() + F.expr(f"INTERVAL {max_clock_skew}")
        if max_clock_skew is not None
        else None
    )
    reason = (
        F.when(F.col("raw_line").isNotNull(), corrupt_line_reason(F.col("raw_line")))
        .when(F.col("tweet_id_num").isNull(), F.lit(id_reason("id")))
        .when(F.col("user_id").isNull(), F.lit("missing author"))
        .when(F.col("created_at").isNull(), F.lit("missing or unreadable created_at"))
        # besides ingest's limit, this makes every query that reads the reason parse `text`:
        # Spark's JSON reader parses only the fields a query reads, so a text longer than it
        # reads would otherwise be rejected by one query and valid in another
        .when(F.col("text_length") > MAX_TEXT_CHARS, F.lit(TEXT_REASON))
        .when(missing_profile, F.lit("missing author public_metrics"))
        .when(F.col("created_at") < platform_start, F.lit(before_platform_reason("created_at")))
        .when(
            F.col("account_created_at") < platform_start,
            F.lit(before_platform_reason("author.created_at")),
        )
        .when(F.col("created_at") < F.col("account_created_at"), F.lit(BEFORE_ACCOUNT_REASON))
    )
    if latest is not None:
        reason = reason.when(
            F.col("created_at") > latest, F.lit(future_reason(str(max_clock_skew)))
        )
    return parsed.withColumn("reject_reason", reason)


def valid_tweets(parsed: DataFrame) -> DataFrame:
    """Rows of :func:`parse_tweets` that are complete tweets."""
    return parsed.where(F.col("reject_reason").isNull()).drop("reject_reason", "raw_line")


def rejected_rows(parsed: DataFrame) -> DataFrame:
    """Rows of :func:`parse_tweets` that are not, with why and what was read.

    A line whose bytes are not UTF-8 is kept twice: `raw_line` as text (each bad byte replaced
    by U+FFFD) and `raw_line_base64`, its bytes as they were (null for every other line).
    """
    raw_line = F.col("raw_line")
    return parsed.where(F.col("reject_reason").isNotNull()).select(
        "reject_reason",
        "tweet_id",
        "user_id",
        F.make_valid_utf8(raw_line).alias("raw_line"),
        F.when(~F.is_valid_utf8(raw_line), F.base64(raw_line.cast("binary"))).alias(
            "raw_line_base64"
        ),
    )
