"""Features: a Structured Streaming job turns the raw snapshot into per-user and per-tweet tables.

The logic is a set of pure `DataFrame -> DataFrame` functions (:func:`parse_tweets`,
:func:`valid_tweets`, :func:`rejected_rows`, :func:`user_features`, :func:`training_rows`).
The streaming job (:func:`stream_feature_tables`, run as the step by :func:`build_features`) and
the batch job (:func:`build_features_batch`) are two thin I/O wrappers around the same
functions, so stream and batch agree by construction.

Outputs (Parquet):
- `users_dir`: one row per user, with the profile metrics of the user's latest tweet (by
  `created_at`, ties broken by tweet id), and activity and engagement aggregates. Written by a
  complete-mode streaming aggregation (state in the checkpoint), rewritten whole after every
  micro-batch.
- `training_dir`: one row per original tweet (retweets excluded), label
  `engagement = log1p(retweets + replies + likes + quotes)`, tweet features and the author's
  profile at tweet time. Written per micro-batch into `batch_id=<n>` folders, so a replayed
  batch overwrites itself instead of duplicating rows.
- `rejected_dir`: raw lines Spark could not read as a normalized tweet, with the reason.
"""

from __future__ import annotations

import operator
import shutil
import time
from dataclasses import dataclass
from functools import reduce
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from tweetops.errors import TweetopsError
from tweetops.ingest.snapshot import PART_SUFFIX, part_files
from tweetops.outputs import clear_marker, mark_complete, require_complete
from tweetops.runner import StepRun, run_step
from tweetops.schema import (
    CORRUPT_RECORD_COLUMN,
    LABEL_COLUMN,
    MODEL_INPUT_COLUMNS,
    PROFILE_COLUMNS,
    RAW_TWEET_SCHEMA,
    TRAINING_KEY_COLUMNS,
    corrupt_line_reason,
)
from tweetops.settings import FeaturesSettings, Settings
from tweetops.spark import spark_path

API_TIME_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSSX"
TWEET_METRICS = ("retweet_count", "reply_count", "like_count", "quote_count")


def _api_time(column: Column) -> Column:
    return F.try_to_timestamp(column, F.lit(API_TIME_FORMAT))


def _count(array: Column) -> Column:
    return F.coalesce(F.size(array), F.lit(0)).cast("long")


def _references(kind: str) -> Column:
    return F.coalesce(F.exists(F.col("referenced_tweets"), lambda ref: ref["type"] == kind),
                      F.lit(False))


def parse_tweets(raw: DataFrame) -> DataFrame:
    """Flatten raw normalized records into one typed row per tweet (invalid rows kept, flagged).

    The tweet's own public metrics are summed into `engagement_total`; the author's profile
    metrics keep their record names (:data:`~tweetops.schema.PROFILE_COLUMNS`).
    """
    author_metrics = F.col("author.public_metrics")
    metrics = F.col("public_metrics")
    engagement_total = sum((F.coalesce(metrics[name], F.lit(0)) for name in TWEET_METRICS),
                           F.lit(0).cast("long"))
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
        F.col(CORRUPT_RECORD_COLUMN).alias("raw_line"),
    )
    missing_profile = reduce(operator.or_, (F.col(name).isNull() for name in PROFILE_COLUMNS))
    reason = (
        F.when(F.col("raw_line").isNotNull(), corrupt_line_reason(F.col("raw_line")))
        .when(F.col("tweet_id_num").isNull(), F.lit("missing or non-numeric tweet id"))
        .when(F.col("user_id").isNull(), F.lit("missing author"))
        .when(F.col("created_at").isNull(), F.lit("missing or unreadable created_at"))
        .when(missing_profile, F.lit("missing author public_metrics"))
    )
    return parsed.withColumn("reject_reason", reason)


def valid_tweets(parsed: DataFrame) -> DataFrame:
    """Rows of :func:`parse_tweets` that are complete tweets."""
    return parsed.where(F.col("reject_reason").isNull()).drop("reject_reason", "raw_line")


def rejected_rows(parsed: DataFrame) -> DataFrame:
    """Rows of :func:`parse_tweets` that are not, with why and what was read."""
    return parsed.where(F.col("reject_reason").isNotNull()).select(
        "reject_reason", "tweet_id", "user_id", "raw_line")


def user_features(tweets: DataFrame) -> DataFrame:
    """One row per user: latest profile (by created_at, then tweet id), activity, engagement."""
    latest = F.max(F.struct(
        F.col("created_at"), F.col("tweet_id_num"), F.col("username"),
        *(F.col(name) for name in PROFILE_COLUMNS), F.col("verified"),
        F.col("account_created_at"),
    )).alias("latest")
    original = ~F.col("is_retweet")
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


def training_rows(tweets: DataFrame) -> DataFrame:
    """One row per original tweet (retweets excluded): keys, label, the model's input columns.

    The label is `engagement = log1p(retweets + replies + likes + quotes)`; the inputs are
    :data:`~tweetops.schema.MODEL_INPUT_COLUMNS`, the author's profile at tweet time included.
    """
    derived = (
        tweets.where(~F.col("is_retweet"))
        .withColumn(LABEL_COLUMN, F.log1p(F.col("engagement_total").cast("double")))
        .withColumn("hour_of_day", F.hour("created_at").cast("long"))
        .withColumn("account_age_days",
                    F.coalesce(F.datediff("created_at", "account_created_at"), F.lit(0))
                    .cast("long"))
    )
    return derived.select(*TRAINING_KEY_COLUMNS, LABEL_COLUMN, *MODEL_INPUT_COLUMNS)


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

    def logged_metrics(self) -> dict[str, float]:
        """Counts, micro-batches and throughput."""
        return {"features_input_rows": self.input_rows,
                "features_micro_batches": self.micro_batches,
                "features_users": self.users,
                "features_training_rows": self.training_rows,
                "features_rejected": self.rejected,
                "features_rows_per_second": self.rows_per_second}

    def summary(self) -> str:
        """One line: rows in, micro-batches, tables out, throughput."""
        return (f"features: {self.input_rows} raw rows in {self.micro_batches} micro-batches -> "
                f"{self.users} users, {self.training_rows} training rows, {self.rejected} "
                f"rejected ({self.rows_per_second:,.0f} rows/s)")


def build_features(settings: Settings) -> FeaturesResult:
    """The features step: :func:`stream_feature_tables` in the step's MLflow run."""
    config = settings.features
    return run_step(settings, "features", ("features", "spark"),
                    lambda run: stream_feature_tables(_session(run), config), needs_spark=True,
                    inputs={"raw_tweets": config.raw_dir})


def stream_feature_tables(spark: SparkSession, config: FeaturesSettings) -> FeaturesResult:
    """Run the Structured Streaming job over the snapshot until every file is processed.

    Two queries read `raw_dir` as a file stream (`maxFilesPerTrigger` from params,
    `trigger(availableNow=True)`, checkpoints under `checkpoint_dir`): one appends training
    rows (and rejected lines), one maintains the per-user aggregation. With
    `incremental: false` (the default) outputs and checkpoints start empty; with `true` only
    part files not seen before are read.
    """
    if not part_files(config.raw_dir):
        raise TweetopsError(f"No tweets found in {config.raw_dir}: run `tweetops ingest` first "
                            f"or point features.raw_dir at a snapshot.")
    require_complete(config.raw_dir, produced_by="ingest")
    for folder in (config.training_dir, config.users_dir, config.rejected_dir):
        clear_marker(folder)
    if not config.incremental:
        for folder in (config.users_dir, config.training_dir, config.rejected_dir,
                       config.checkpoint_dir):
            shutil.rmtree(folder, ignore_errors=True)
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
    result = FeaturesResult(
        input_rows=_progress_sum(queries[0], "numInputRows"),
        micro_batches=len(queries[0].recentProgress),
        users=_count_parquet(spark, config.users_dir),
        training_rows=_count_parquet(spark, config.training_dir),
        rejected=_count_parquet(spark, config.rejected_dir),
        seconds=time.perf_counter() - started,
    )
    counts = {"training_rows": result.training_rows, "users": result.users,
              "rejected": result.rejected}
    for folder in (config.training_dir, config.users_dir, config.rejected_dir):
        mark_complete(folder, "features", counts)  # (rejected_dir exists then, even if empty)
    return result


def _session(run: StepRun) -> SparkSession:
    assert run.spark is not None
    return run.spark


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
