"""Loading training rows and splitting them the same way in every step that needs the split."""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from tweetops.errors import TweetopsError
from tweetops.outputs import require_complete
from tweetops.schema import LABEL_COLUMN, MODEL_INPUT_COLUMNS
from tweetops.spark import spark_path

KEY_COLUMN = "tweet_id"
TRAINING_COLUMNS = (KEY_COLUMN, *MODEL_INPUT_COLUMNS, LABEL_COLUMN)


def load_training_rows(spark: SparkSession, training_dir: Path) -> DataFrame:
    """The training table written by a features run that finished (only the model's columns).

    A table without the features step's completion marker (a killed or failed run) is refused.
    """
    if not training_dir.exists() or not any(training_dir.rglob("*.parquet")):
        raise TweetopsError(f"No training rows in {training_dir}: run `tweetops features` first "
                            f"or point train.training_dir at a features table.")
    require_complete(training_dir, produced_by="features")
    rows = spark.read.parquet(spark_path(training_dir))
    missing = [name for name in TRAINING_COLUMNS if name not in rows.columns]
    if missing:
        raise TweetopsError(f"{training_dir} lacks columns {missing}: rebuild it with "
                            f"`tweetops features`.")
    return rows.select(*TRAINING_COLUMNS)


def split_train_test(rows: DataFrame, *, seed: int, test_fraction: float,
                     partitions: int) -> tuple[DataFrame, DataFrame]:
    """`randomSplit` with the seed, made reproducible on any cluster and any file order.

    randomSplit samples each partition with `seed + partition index` after sorting it, so the
    split depends on which rows share a partition. Hash-partitioning by tweet id first fixes
    that: the same rows and settings always give the same split.
    """
    stable = rows.repartition(partitions, KEY_COLUMN)
    train, test = stable.randomSplit([1.0 - test_fraction, test_fraction], seed=seed)
    return train, test
