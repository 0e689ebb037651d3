"""Loading training rows and splitting them the same way in every step that needs the split."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from tweetops.errors import TweetopsError
from tweetops.markers import require_complete
from tweetops.schema import LABEL_COLUMN, MODEL_INPUT_COLUMNS
from tweetops.spark import spark_path

KEY_COLUMN = "tweet_id"
TRAINING_COLUMNS = (KEY_COLUMN, *MODEL_INPUT_COLUMNS, LABEL_COLUMN)


def require_training_rows(training_rows_dir: Path) -> None:
    """Fail with one sentence when `training_rows_dir` holds no finished training table.

    A table without the features step's completion marker (a killed or failed run) is refused.
    """
    if not training_rows_dir.exists() or not any(training_rows_dir.rglob("*.parquet")):
        raise TweetopsError(
            f"No training rows in {training_rows_dir}: run `tweetops features` "
            f"first or point train.training_rows_dir at a features table."
        )
    require_complete(training_rows_dir, produced_by="features")


def load_training_rows(spark: SparkSession, training_rows_dir: Path) -> DataFrame:
    """The training table written by a features run that finished (only the model's columns)."""
    require_training_rows(training_rows_dir)
    rows = spark.read.parquet(spark_path(training_rows_dir))
    missing = [name for name in TRAINING_COLUMNS if name not in rows.columns]
    if missing:
        raise TweetopsError(
            f"{training_rows_dir} lacks columns {missing}: rebuild it with `tweetops features`."
        )
    return rows.select(*TRAINING_COLUMNS)


SPLIT_METHOD = "sha256-of-seed-and-id"
_HASH_DIGITS = 13  # hex digits of the digest used: 52 bits, exact in a double


def is_test_id(tweet_id: str, *, seed: int, test_fraction: float) -> bool:
    """Whether the tweet `tweet_id` is a test row under the split settings `seed`/`test_fraction`.

    The rule, and the Python twin of :func:`is_test_row`: the first 52 bits of
    sha256("<seed>:<tweet_id>") as a fraction of 2**52, below `test_fraction`. It depends on
    nothing but the id and the settings, so it never changes as data is added, removed or
    repartitioned.
    """
    digest = hashlib.sha256(f"{seed}:{tweet_id}".encode()).hexdigest()[:_HASH_DIGITS]
    return int(digest, 16) / float(16**_HASH_DIGITS) < test_fraction


def is_test_row(*, seed: int, test_fraction: float, key: str = KEY_COLUMN) -> Column:
    """A boolean Column: :func:`is_test_id` computed by Spark for every row's `key`."""
    digest = F.sha2(F.concat(F.lit(f"{seed}:"), F.col(key).cast("string")), 256)
    bits = F.conv(F.substring(digest, 1, _HASH_DIGITS), 16, 10).cast("long")
    return (bits.cast("double") / F.lit(float(16**_HASH_DIGITS))) < F.lit(test_fraction)


def split_train_test(
    rows: DataFrame, *, seed: int, test_fraction: float, partitions: int
) -> tuple[DataFrame, DataFrame]:
    """Training and test rows: a row is a test row when :func:`is_test_id` says so.

    The split is a pure function of each row's tweet id and (`seed`, `test_fraction`): the same
    tweet is on the same side whatever else is in the table and however it is partitioned.
    Both halves are hash-partitioned by tweet id into `partitions` partitions and sorted by it
    within each: the partition count and row order a fit sees are the same on `local[2]` and on
    any cluster, so the same rows and settings give the same forest (RandomForest's bootstrap
    and split sampling are seeded per partition).
    """
    flagged = rows.withColumn(_FLAG, is_test_row(seed=seed, test_fraction=test_fraction))
    stable = flagged.repartition(partitions, KEY_COLUMN).sortWithinPartitions(KEY_COLUMN)
    train = stable.where(~F.col(_FLAG)).drop(_FLAG)
    test = stable.where(F.col(_FLAG)).drop(_FLAG)
    return train, test


_FLAG = "_tweetops_is_test_row"


def persist_rows(rows: DataFrame, storage_level: str) -> DataFrame:
    """`rows` persisted at `storage_level` (a StorageLevel name), or as they are for `none`."""
    if storage_level == "none":
        return rows
    return rows.persist(getattr(StorageLevel, storage_level))
