"""The feature tables as pure `DataFrame -> DataFrame` functions over valid tweets.

- :func:`user_features`: one row per user (latest profile, activity, engagement), the
  :func:`users_from_state` of a :func:`user_state` (aggregates that merge by addition).
- :func:`author_history`: each tweet with its author's history strictly before it, optionally
  over a recent slice plus an :func:`author_carry` of the older tweets.
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
# the longest window of author_history: older tweets are only counted, summed and dated
HISTORY_HORIZON_MS = 7 * DAY_MS


def with_event_ms(tweets: DataFrame) -> DataFrame:
    """`tweets` with `event_ms`, the event time (`created_at`) in epoch milliseconds."""
    return tweets.withColumn(EVENT_MS, F.unix_millis("created_at"))


def _original() -> Column:
    return ~F.col("is_retweet")


def user_state(tweets: DataFrame, previous: DataFrame | None = None) -> DataFrame:
    """Per user, the partial aggregates :func:`users_from_state` finishes; they merge by addition.

    Counts and sums add, `first_tweet_at` is a minimum and `latest` (the profile of the latest
    tweet, by created_at then tweet id) a maximum, so the state of `previous` (the state of
    earlier tweets) and `tweets` together is one aggregation of both: the streaming job keeps
    the state and merges each micro-batch's tweets into it, instead of aggregating the whole
    history again.
    """
    original = _original()
    rows = tweets.select(
        "user_id",
        F.lit(1).cast("long").alias("tweets_seen"),
        F.when(original, 1).otherwise(0).cast("long").alias("original_tweets"),
        F.when(original, 0).otherwise(1).cast("long").alias("retweets_made"),
        F.col("created_at").alias("first_tweet_at"),
        F.struct(
            F.col("created_at"),
            F.col("tweet_id_num"),
            F.col("username"),
            *(F.col(name) for name in PROFILE_COLUMNS),
            F.col("verified"),
            F.col("account_created_at"),
        ).alias("latest"),
        F.when(original, F.col("engagement_total")).alias("total_engagement"),
        F.when(original, F.log1p(F.col("engagement_total").cast("double"))).alias(
            "log_engagement_sum"
        ),
    )
    if previous is not None:
        rows = rows.unionByName(previous)
    return rows.groupBy("user_id").agg(
        F.sum("tweets_seen").cast("long").alias("tweets_seen"),
        F.sum("original_tweets").cast("long").alias("original_tweets"),
        F.sum("retweets_made").cast("long").alias("retweets_made"),
        F.min("first_tweet_at").alias("first_tweet_at"),
        F.max("latest").alias("latest"),
        F.sum("total_engagement").cast("long").alias("total_engagement"),
        F.sum("log_engagement_sum").alias("log_engagement_sum"),
    )


def users_from_state(state: DataFrame) -> DataFrame:
    """The user table of a :func:`user_state`: one row per user."""
    return state.select(
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
        F.when(
            F.col("original_tweets") > 0, F.col("log_engagement_sum") / F.col("original_tweets")
        ).alias("mean_engagement"),
    )


def user_features(tweets: DataFrame) -> DataFrame:
    """One row per user: latest profile (by created_at, then tweet id), activity, engagement."""
    return users_from_state(user_state(tweets))


def author_carry(tweets: DataFrame) -> DataFrame:
    """Per author, what :func:`author_history` needs of tweets older than its longest window.

    `carry_originals` (original tweets), `carry_log_engagement` (the sum of their
    `log1p(engagement)`) and `carry_last_ms` (the latest event time). Carries of disjoint sets of
    tweets merge by :func:`merge_carry`.
    """
    timed = tweets if EVENT_MS in tweets.columns else with_event_ms(tweets)
    log_engagement = F.when(_original(), F.log1p(F.col("engagement_total").cast("double")))
    return timed.groupBy("user_id").agg(
        F.count(log_engagement).cast("long").alias("carry_originals"),
        F.sum(log_engagement).alias("carry_log_engagement"),
        F.max(EVENT_MS).alias("carry_last_ms"),
    )


def merge_carry(*carries: DataFrame) -> DataFrame:
    """One :func:`author_carry` from several (of disjoint sets of tweets)."""
    union = carries[0]
    for carry in carries[1:]:
        union = union.unionByName(carry)
    return union.groupBy("user_id").agg(
        F.sum("carry_originals").cast("long").alias("carry_originals"),
        F.sum("carry_log_engagement").alias("carry_log_engagement"),
        F.max("carry_last_ms").alias("carry_last_ms"),
    )


def author_history(tweets: DataFrame, carry: DataFrame | None = None) -> DataFrame:
    """Each tweet with its author's history strictly before its `created_at`.

    Adds :data:`~tweetops.schema.AUTHOR_HISTORY_COLUMNS`: tweets of any kind in the previous
    24 h and 7 d, the mean `log1p(engagement)` of the author's previous original tweets (each
    tweet counts once; :data:`~tweetops.schema.NO_HISTORY_MEAN_ENGAGEMENT` and
    `author_has_history = false` when there is none) and the days since the author's previous
    tweet (:data:`~tweetops.schema.NO_PREVIOUS_TWEET_DAYS` when there is none). A frame ends
    1 ms before the tweet, so neither the tweet nor anything at or after its time counts.

    With `carry` (:func:`author_carry` of every tweet before some time `b`), `tweets` are the
    tweets at or after `b` and the carry stands for the older ones: the rows at or after
    `b + 7 d` (:data:`HISTORY_HORIZON_MS`) get the same history as over the whole of it; earlier
    rows see a cut 24 h / 7 d window. The mean then sums the carried and the windowed sums, in
    that order, so it may differ from the whole history's in the last bits of a double.
    """
    timed = tweets if EVENT_MS in tweets.columns else with_event_ms(tweets)
    by_author = Window.partitionBy("user_id").orderBy(EVENT_MS)
    everything_before = by_author.rangeBetween(Window.unboundedPreceding, -1)
    log_engagement = F.when(_original(), F.log1p(F.col("engagement_total").cast("double")))
    previous_originals = F.count(log_engagement).over(everything_before)
    previous_sum = F.sum(log_engagement).over(everything_before)
    previous_tweet_ms = F.max(EVENT_MS).over(everything_before)
    carried = [] if carry is None else list(carry.columns)
    if carry is not None:
        timed = timed.join(carry, "user_id", "left")
        previous_originals = previous_originals + F.coalesce(
            F.col("carry_originals"), F.lit(0).cast("long")
        )
        previous_sum = F.coalesce(F.col("carry_log_engagement"), F.lit(0.0)) + F.coalesce(
            previous_sum, F.lit(0.0)
        )
        previous_tweet_ms = F.coalesce(previous_tweet_ms, F.col("carry_last_ms"))
    with_history = (
        timed.withColumn(
            "author_tweets_24h",
            F.count(F.lit(1)).over(by_author.rangeBetween(-DAY_MS, -1)).cast("long"),
        )
        .withColumn(
            "author_tweets_7d",
            F.count(F.lit(1)).over(by_author.rangeBetween(-HISTORY_HORIZON_MS, -1)).cast("long"),
        )
        .withColumn("author_has_history", previous_originals > 0)
        .withColumn(
            "author_mean_engagement",
            F.coalesce(
                F.when(previous_originals > 0, previous_sum / previous_originals),
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
        .drop(*(name for name in carried if name != "user_id"))
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
