"""Features: a Structured Streaming job turns the raw snapshot into per-user and per-tweet tables.

The logic is a set of pure `DataFrame -> DataFrame` functions (:func:`parse_tweets`,
:func:`valid_tweets`, :func:`rejected_rows`, :func:`user_features`, :func:`training_rows`).
The streaming job (:func:`build_features`) and the batch job (:func:`build_features_batch`) are
two thin I/O wrappers around the same functions, so stream and batch agree by construction.

Outputs (Parquet):
- `users_dir`: one row per user, with the profile metrics of the user's latest tweet (by
  `created_at`, ties broken by tweet id) under the lecture's v1.1 names, and activity and
  engagement aggregates. Written by a complete-mode streaming aggregation (state in the
  checkpoint), rewritten whole after every micro-batch.
- `training_dir`: one row per original tweet (retweets excluded), label
  `engagement = log1p(retweets + replies + likes + quotes)`, tweet features and the author's
  profile at tweet time. Written per micro-batch into `batch_id=<n>` folders, so a replayed
  batch overwrites itself instead of duplicating rows.
- `rejected_dir`: raw lines Spark could not read as a normalized tweet, with the reason.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import mlflow
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from tweetops.errors import TweetopsError
from tweetops.ingest.snapshot import PART_SUFFIX, part_files
from tweetops.schema import CORRUPT_RECORD_COLUMN, LABEL_COLUMN, RAW_TWEET_SCHEMA
from tweetops.settings import FeaturesSettings, Settings
from tweetops.spark import build_spark, spark_conf_for_tracking, spark_path
from tweetops.tracking import log_data_lineage, log_spark_conf, step_run

API_TIME_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSSX"


def _api_time(column: Column) -> Column:
    return F.try_to_timestamp(column, F.lit(API_TIME_FORMAT))


def _count(array: Column) -> Column:
    return F.coalesce(F.size(array), F.lit(0)).cast("long")


def _references(kind: str) -> Column:
    return F.coalesce(F.exists(F.col("referenced_tweets"), lambda ref: ref["type"] == kind),
                      F.lit(False))


def parse_tweets(raw: DataFrame) -> DataFrame:
    """Flatten raw normalized records into one typed row per tweet (invalid rows kept, flagged)."""
    author_metrics = F.col("author.public_metrics")
    metrics = F.col("public_metrics")
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
        F.coalesce(metrics["retweet_count"], F.lit(0)).alias("retweet_count"),
        F.coalesce(metrics["reply_count"], F.lit(0)).alias("reply_count"),
        F.coalesce(metrics["like_count"], F.lit(0)).alias("like_count"),
        F.coalesce(metrics["quote_count"], F.lit(0)).alias("quote_count"),
        author_metrics["followers_count"].alias("followers_count"),
        author_metrics["following_count"].alias("friends_count"),
        author_metrics["tweet_count"].alias("statuses_count"),
        F.coalesce(author_metrics["like_count"], F.lit(0)).alias("favourites_count"),
        author_metrics["listed_count"].alias("listed_count"),
        F.coalesce(F.col("author.verified"), F.lit(False)).alias("verified"),
        F.col(CORRUPT_RECORD_COLUMN).alias("raw_line"),
    )
    reason = (
        F.when(F.col("raw_line").isNotNull(), F.lit("line is not a JSON tweet object"))
        .when(F.col("tweet_id_num").isNull(), F.lit("missing or non-numeric tweet id"))
        .when(F.col("user_id").isNull(), F.lit("missing author"))
        .when(F.col("created_at").isNull(), F.lit("missing or unreadable created_at"))
        .when(F.col("followers_count").isNull() | F.col("friends_count").isNull()
              | F.col("statuses_count").isNull() | F.col("listed_count").isNull(),
              F.lit("missing author public_metrics"))
    )
    return parsed.withColumn("reject_reason", reason)


def valid_tweets(parsed: DataFrame) -> DataFrame:
    """Rows of :func:`parse_tweets` that are complete tweets."""
    return parsed.where(F.col("reject_reason").isNull()).drop("reject_reason", "raw_line")


def rejected_rows(parsed: DataFrame) -> DataFrame:
    """Rows of :func:`parse_tweets` that are not, with why and what was read."""
    return parsed.where(F.col("reject_reason").isNotNull()).select(
        "reject_reason", "tweet_id", "user_id", "raw_line")


def _total_engagement() -> Column:
    return (F.col("retweet_count") + F.col("reply_count") + F.col("like_count")
            + F.col("quote_count"))


def user_features(tweets: DataFrame) -> DataFrame:
    """One row per user: latest profile (by created_at, then tweet id), activity, engagement."""
    latest = F.max(F.struct(
        F.col("created_at"), F.col("tweet_id_num"), F.col("username"),
        F.col("followers_count"), F.col("friends_count"), F.col("statuses_count"),
        F.col("favourites_count"), F.col("listed_count"), F.col("verified"),
        F.col("account_created_at"),
    )).alias("latest")
    original = ~F.col("is_retweet")
    aggregated = tweets.groupBy("user_id").agg(
        F.count(F.lit(1)).alias("tweets_seen"),
        F.sum(F.when(original, 1).otherwise(0)).cast("long").alias("original_tweets"),
        F.sum(F.when(original, 0).otherwise(1)).cast("long").alias("retweets_made"),
        F.min("created_at").alias("first_tweet_at"),
        latest,
        F.sum(F.when(original, _total_engagement())).alias("total_engagement"),
        F.avg(F.when(original, F.log1p(_total_engagement()))).alias("mean_engagement"),
    )
    return aggregated.select(
        "user_id",
        F.col("latest.username").alias("username"),
        "tweets_seen",
        "original_tweets",
        "retweets_made",
        F.col("latest.followers_count").alias("followers_count"),
        F.col("latest.friends_count").alias("friends_count"),
        F.col("latest.statuses_count").alias("statuses_count"),
        F.col("latest.favourites_count").alias("favourites_count"),
        F.col("latest.listed_count").alias("listed_count"),
        F.col("latest.verified").alias("verified"),
        F.col("latest.account_created_at").alias("account_created_at"),
        "first_tweet_at",
        F.col("latest.created_at").alias("last_tweet_at"),
        F.coalesce(F.col("total_engagement"), F.lit(0)).cast("long").alias("total_engagement"),
        "mean_engagement",
    )


def training_rows(tweets: DataFrame) -> DataFrame:
    """One row per original tweet (retweets excluded): label, tweet features, author profile."""
    return tweets.where(~F.col("is_retweet")).select(
        "tweet_id",
        "user_id",
        "created_at",
        F.log1p(_total_engagement().cast("double")).alias(LABEL_COLUMN),
        "lang",
        F.hour("created_at").cast("long").alias("hour_of_day"),
        "text_length",
        "hashtag_count",
        "mention_count",
        "url_count",
        "has_media",
        "is_reply",
        "is_quote",
        "followers_count",
        "friends_count",
        "statuses_count",
        "favourites_count",
        "listed_count",
        "verified",
        F.coalesce(F.datediff("created_at", "account_created_at"), F.lit(0)).cast("long")
        .alias("account_age_days"),
    )


def read_raw_batch(spark: SparkSession, raw_dir: Path) -> DataFrame:
    """The raw snapshot as a batch DataFrame with the explicit schema."""
    return (spark.read.schema(RAW_TWEET_SCHEMA)
            .option("pathGlobFilter", f"*{PART_SUFFIX}")
            .option("columnNameOfCorruptRecord", CORRUPT_RECORD_COLUMN)
            .json(spark_path(raw_dir)))


def build_features_batch(spark: SparkSession, raw_dir: Path) -> tuple[DataFrame, DataFrame]:
    """Batch twin of the streaming job: `(user_features, training_rows)` of the snapshot."""
    tweets = valid_tweets(parse_tweets(read_raw_batch(spark, raw_dir)))
    return user_features(tweets), training_rows(tweets)


@dataclass(frozen=True)
class FeaturesResult:
    """Counts and throughput of one features run."""

    input_rows: int
    micro_batches: int
    users: int
    training_rows: int
    rejected: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        """Raw rows read per second of wall time, both queries together."""
        return self.input_rows / self.seconds if self.seconds > 0 else 0.0


def build_features(settings: Settings) -> FeaturesResult:
    """Run the Structured Streaming job over the snapshot until every file is processed.

    Two queries read `raw_dir` as a file stream (`maxFilesPerTrigger` from params,
    `trigger(availableNow=True)`, checkpoints under `checkpoint_dir`): one appends training
    rows (and rejected lines), one maintains the per-user aggregation. With
    `incremental: false` (the default) outputs and checkpoints start empty; with `true` only
    part files not seen before are read.
    """
    with step_run(settings, "features", ("features", "spark")):
        return _build_features_in_run(settings)


def _build_features_in_run(settings: Settings) -> FeaturesResult:
    config = settings.features
    if not part_files(config.raw_dir):
        raise TweetopsError(f"No tweets found in {config.raw_dir}: run `tweetops ingest` first "
                            f"or point features.raw_dir at a snapshot.")
    if not config.incremental:
        for folder in (config.users_dir, config.training_dir, config.rejected_dir,
                       config.checkpoint_dir):
            shutil.rmtree(folder, ignore_errors=True)
    spark = build_spark(settings.spark)
    log_data_lineage("raw_tweets", config.raw_dir)
    log_spark_conf(spark_conf_for_tracking(spark))
    started = time.perf_counter()
    stream = (spark.readStream.schema(RAW_TWEET_SCHEMA)
              .option("maxFilesPerTrigger", config.max_files_per_trigger)
              .option("pathGlobFilter", f"*{PART_SUFFIX}")
              .option("columnNameOfCorruptRecord", CORRUPT_RECORD_COLUMN)
              .json(spark_path(config.raw_dir)))
    parsed = parse_tweets(stream)
    queries = [_start_rows_query(parsed, config), _start_users_query(parsed, config)]
    for query in queries:
        query.awaitTermination()
    seconds = time.perf_counter() - started
    result = FeaturesResult(
        input_rows=_progress_sum(queries[0], "numInputRows"),
        micro_batches=len(queries[0].recentProgress),
        users=_count_parquet(spark, config.users_dir),
        training_rows=_count_parquet(spark, config.training_dir),
        rejected=_count_parquet(spark, config.rejected_dir),
        seconds=seconds,
    )
    print(f"features: {result.input_rows} raw rows in {result.micro_batches} micro-batches -> "
          f"{result.users} users, {result.training_rows} training rows, {result.rejected} "
          f"rejected ({result.rows_per_second:,.0f} rows/s)", flush=True)
    mlflow.log_metrics({"features_input_rows": result.input_rows,
                        "features_micro_batches": result.micro_batches,
                        "features_users": result.users,
                        "features_training_rows": result.training_rows,
                        "features_rejected": result.rejected,
                        "features_rows_per_second": result.rows_per_second})
    return result


def _start_rows_query(parsed: DataFrame, config: FeaturesSettings) -> StreamingQuery:
    training_dir, rejected_dir = spark_path(config.training_dir), spark_path(config.rejected_dir)

    def write_batch(batch: DataFrame, batch_id: int) -> None:
        # both outputs read the same micro-batch: cache it rather than parse the files twice
        batch.persist()
        try:
            (training_rows(valid_tweets(batch)).write.mode("overwrite")
             .parquet(f"{training_dir}/batch_id={batch_id}"))
            rejected = rejected_rows(batch)
            if not rejected.isEmpty():
                rejected.write.mode("overwrite").parquet(f"{rejected_dir}/batch_id={batch_id}")
        finally:
            batch.unpersist()

    return (parsed.writeStream.queryName("training_rows")
            .foreachBatch(write_batch)
            .option("checkpointLocation", spark_path(config.checkpoint_dir / "training_rows"))
            .trigger(availableNow=True)
            .start())


def _start_users_query(parsed: DataFrame, config: FeaturesSettings) -> StreamingQuery:
    users_dir = spark_path(config.users_dir)

    def write_users(batch: DataFrame, _batch_id: int) -> None:
        batch.write.mode("overwrite").parquet(users_dir)

    return (user_features(valid_tweets(parsed)).writeStream.queryName("user_features")
            .outputMode("complete")
            .foreachBatch(write_users)
            .option("checkpointLocation", spark_path(config.checkpoint_dir / "user_features"))
            .trigger(availableNow=True)
            .start())


def _progress_sum(query: StreamingQuery, key: str) -> int:
    return int(sum(progress.get(key, 0) or 0 for progress in query.recentProgress))


def _count_parquet(spark: SparkSession, folder: Path) -> int:
    if not folder.exists() or not any(folder.rglob("*.parquet")):
        return 0
    return spark.read.parquet(spark_path(folder)).count()
