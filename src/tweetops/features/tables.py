"""The feature tables as pure `DataFrame -> DataFrame` functions over valid tweets.

- :func:`user_features`: one row per user (latest profile, activity, engagement).
- :func:`author_history`: each tweet with its author's history strictly before it.
- :func:`training_rows`: one row per original tweet, label and model inputs.
- :func:`user_activity`: per user and event-time window, activity, engagement and growth.

The streaming job and the batch twin call these same functions.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from tweetops.schema import (
    LABEL_AGE_COLUMN,
    LABEL_COLUMN,
    MODEL_INPUT_COLUMNS,
    NO_HISTORY_MEAN_ENGAGEMENT,
    NO_PREVIOUS_TWEET_DAYS,
    PROFILE_COLUMNS,
    TRAINING_KEY_COLUMNS,
)
from tweetops.settings import DAY_MS, duration_ms

__all__ = ["duration_ms"]

EVENT_MS = "event_ms"


def with_event_ms(tweets: DataFrame) -> DataFrame:
    """`tweets` with `event_ms`, the event time (`created_at`) in epoch milliseconds."""
    return tweets.withColumn(EVENT_MS, F.unix_millis("created_at"))


def _original() -> Column:
    return ~F.col("is_retweet")


def user_features(tweets: DataFrame) -> DataFrame:
    """One row per user: latest profile (by created_at, then tweet id), activity, engagement."""
    latest = F.max(
        F.struct(
            F.col("created_at"),
            F.col("tweet_id_num"),
            F.col("username"),
            *(F.col(name) for name in PROFILE_COLUMNS),
            F.col("verified"),
            F.col("account_created_at"),
        )
    ).alias("latest")
    original = _original()
    aggregated = tweets.groupBy("user_id").agg(
        F.count(F.lit(1)).alias("tweets_seen"),
        F.sum(F.when(original, 1).otherwise(0)).cast("long").alias("original_tweets"),
        F.sum(F.when(original, 0).otherwise(1)).cast("long").alias("retweets_made"),
        F.min("created_at").alias("first_tweet_at"),
        latest,
        F.sum(F.when(original, F.col("engagement_total"))).alias("total_engagement"),
        F.avg(F.when(original, F.log1p("engagement_total"))).alias("mean_engagement"),
    )
    return aggregated.select(
        "user_id",
        F.col("latest.username").alias("username"),
        "tweets_seen",
        "original_tweets",
        "retweets_made",
        *(F.col(f"latest.{name}").alias(name) for name in PROFILE_COLUMNS),
        F.col("latest.verified").alias("verified"),
        F.col("latest.account_created_at").alias("account_created_at"),
        "first_tweet_at",
        F.col("latest.created_at").alias("last_tweet_at"),
        F.coalesce(F.col("total_engagement"), F.lit(0)).cast("long").alias("total_engagement"),
        "mean_engagement",
    )


def author_history(tweets: DataFrame) -> DataFrame:
    """Each tweet with its author's history strictly before its `created_at`.

    Adds :data:`~tweetops.schema.AUTHOR_HISTORY_COLUMNS`: tweets of any kind in the previous
    24 h and 7 d, the mean `log1p(engagement)` of the author's previous original tweets (each
    tweet counts once; :data:`~tweetops.schema.NO_HISTORY_MEAN_ENGAGEMENT` and
    `author_has_history = false` when there is none) and the days since the author's previous
    tweet (:data:`~tweetops.schema.NO_PREVIOUS_TWEET_DAYS` when there is none). A frame ends
    1 ms before the tweet, so neither the tweet nor anything at or after its time counts.
    """
    timed = tweets if EVENT_MS in tweets.columns else with_event_ms(tweets)
    by_author = Window.partitionBy("user_id").orderBy(EVENT_MS)
    everything_before = by_author.rangeBetween(Window.unboundedPreceding, -1)
    log_engagement = F.when(_original(), F.log1p(F.col("engagement_total").cast("double")))
    previous_originals = F.count(log_engagement).over(everything_before)
    previous_tweet_ms = F.max(EVENT_MS).over(everything_before)
    with_history = (
        timed.withColumn(
            "author_tweets_24h",
            F.count(F.lit(1)).over(by_author.rangeBetween(-DAY_MS, -1)).cast("long"),
        )
        .withColumn(
            "author_tweets_7d",
            F.count(F.lit(1)).over(by_author.rangeBetween(-7 * DAY_MS, -1)).cast("long"),
        )
        .withColumn("author_has_history", previous_originals > 0)
        .withColumn(
            "author_mean_engagement",
            F.coalesce(
                F.sum(log_engagement).over(everything_before) / previous_originals,
                F.lit(NO_HISTORY_MEAN_ENGAGEMENT),
            ),
        )
        .withColumn(
            "days_since_author_previous_tweet",
            F.coalesce(
                (F.col(EVENT_MS) - previous_tweet_ms) / F.lit(float(DAY_MS)),
                F.lit(NO_PREVIOUS_TWEET_DAYS),
            ),
        )
    )
    return with_history if EVENT_MS in tweets.columns else with_history.drop(EVENT_MS)


def label_age_hours() -> Column:
    """Hours from the tweet to its fetch: how long its engagement had (null when unknown)."""
    return (F.unix_millis("fetched_at") - F.unix_millis("created_at")) / F.lit(3_600_000.0)


def too_young(min_age_ms: int | None) -> Column:
    """Whether a tweet was fetched less than `min_age_ms` after it was posted (never when the
    fetch time is unknown or there is no minimum)."""
    if min_age_ms is None:
        return F.lit(False)
    age_ms = F.unix_millis("fetched_at") - F.unix_millis("created_at")
    return F.coalesce(age_ms < min_age_ms, F.lit(False))


def training_rows(tweets: DataFrame, min_age_ms: int | None = None) -> DataFrame:
    """One row per original tweet (retweets excluded): keys, label, the model's input columns.

    `tweets` carry :func:`author_history`'s columns. The label is
    `engagement = log1p(retweets + replies + likes + quotes)`, counted when the tweet was
    fetched, `age_at_fetch_hours` after it was posted; a tweet fetched less than `min_age_ms`
    after it was posted is left out (its engagement had no time to accrue). The inputs are
    :data:`~tweetops.schema.MODEL_INPUT_COLUMNS`: the tweet, the author's profile at tweet time
    and the author's history before it.
    """
    derived = (
        tweets.where(_original() & ~too_young(min_age_ms))
        .withColumn(LABEL_AGE_COLUMN, label_age_hours())
        .withColumn(LABEL_COLUMN, F.log1p(F.col("engagement_total").cast("double")))
        .withColumn("hour_of_day", F.hour("created_at").cast("long"))
        .withColumn(
            "account_age_days",
            F.coalesce(F.datediff("created_at", "account_created_at"), F.lit(0)).cast("long"),
        )
    )
    return derived.select(
        *TRAINING_KEY_COLUMNS, LABEL_COLUMN, LABEL_AGE_COLUMN, *MODEL_INPUT_COLUMNS
    )


def user_activity(tweets: DataFrame, window: str, slide: str | None = None) -> DataFrame:
    """Per user and event-time window (`window` long, every `slide`; tumbling without one).

    Tweets, original tweets, retweets, the engagement sum and mean `log1p` of the originals,
    and the author's follower count at the window's first and last tweet (by `created_at`,
    then tweet id) with the growth between them.
    """
    original = _original()
    at_tweet = F.struct("created_at", "tweet_id_num", "followers_count")
    aggregated = tweets.groupBy("user_id", F.window("created_at", window, slide or window)).agg(
        F.count(F.lit(1)).alias("tweets"),
        F.sum(F.when(original, 1).otherwise(0)).cast("long").alias("original_tweets"),
        F.sum(F.when(original, 0).otherwise(1)).cast("long").alias("retweets"),
        F.sum(F.when(original, F.col("engagement_total"))).alias("total_engagement"),
        F.avg(F.when(original, F.log1p("engagement_total"))).alias("mean_engagement"),
        F.min(at_tweet).alias("first"),
        F.max(at_tweet).alias("last"),
    )
    return aggregated.select(
        "user_id",
        F.col("window.start").alias("window_start"),
        F.col("window.end").alias("window_end"),
        "tweets",
        "original_tweets",
        "retweets",
        F.coalesce(F.col("total_engagement"), F.lit(0)).cast("long").alias("total_engagement"),
        "mean_engagement",
        F.col("first.followers_count").alias("followers_start"),
        F.col("last.followers_count").alias("followers_end"),
        (F.col("last.followers_count") - F.col("first.followers_count")).alias("follower_growth"),
    )


def closed_rows(rows: DataFrame, after_ms: int | None, until_ms: int) -> DataFrame:
    """Rows whose event time is in `[after_ms, until_ms)`: closed now, not closed before."""
    ms = F.unix_millis("created_at")
    closed = rows.where(ms < until_ms)
    return closed if after_ms is None else closed.where(ms >= after_ms)


def closed_windows(activity: DataFrame, after_ms: int | None, until_ms: int) -> DataFrame:
    """Windows of :func:`user_activity` that end in `(after_ms, until_ms]`."""
    end = F.unix_millis("window_end")
    closed = activity.where(end <= until_ms)
    return closed if after_ms is None else closed.where(end > after_ms)
