"""DataFrame equality for tests: equal as multisets of rows, with the differing rows on failure."""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from tweetops.features import FeatureTables, build_features_batch
from tweetops.settings import FeaturesSettings

DIFF_ROWS_SHOWN = 10


def _rounded(frame: DataFrame, digits: int) -> DataFrame:
    """`frame`'s columns in name order, doubles rounded to `digits` decimals."""
    doubles = {f.name for f in frame.schema.fields if f.dataType.typeName() == "double"}
    return frame.select(
        *(F.round(c, digits).alias(c) if c in doubles else F.col(c) for c in sorted(frame.columns))
    )


def assert_same_rows(left: DataFrame, right: DataFrame, digits: int = 9) -> None:
    """Assert `left` and `right` hold the same rows, as multisets, whatever their order.

    Doubles are compared rounded to `digits` decimals (sums merge in another order per batch).
    On failure the message lists the rows only one side has (up to ten of each).
    """
    assert sorted(left.columns) == sorted(right.columns), (
        f"columns differ: left only {sorted(set(left.columns) - set(right.columns))}, "
        f"right only {sorted(set(right.columns) - set(left.columns))}"
    )
    left, right = _rounded(left, digits), _rounded(right, digits)
    only_left = left.exceptAll(right).limit(DIFF_ROWS_SHOWN).collect()
    only_right = right.exceptAll(left).limit(DIFF_ROWS_SHOWN).collect()
    if only_left or only_right:
        shown = "\n".join(
            [
                f"rows only in left ({left.count()} rows in all):",
                *(f"  {row.asDict()}" for row in only_left),
                f"rows only in right ({right.count()} rows in all):",
                *(f"  {row.asDict()}" for row in only_right),
            ]
        )
        raise AssertionError(f"the DataFrames differ\n{shown}")


def read_table(spark: SparkSession, folder: Path) -> DataFrame:
    """A Parquet table the features step wrote, without its `batch_id` bookkeeping column."""
    frame = spark.read.parquet(str(folder.resolve()))
    return frame.drop("batch_id") if "batch_id" in frame.columns else frame


def build_features_batch_for(
    spark: SparkSession, config: FeaturesSettings, *, flush_at_end: bool | None = None
) -> FeatureTables:
    """The batch twin of the features step as `config` runs it (its folders, windows, watermark,
    flush and label age); `flush_at_end` overrides the setting (a live run never flushes)."""
    return build_features_batch(
        spark,
        config.raw_dir,
        watermark=config.watermark,
        activity_window=config.activity_window,
        activity_slide=config.activity_slide,
        flush_at_end=config.flush_at_end if flush_at_end is None else flush_at_end,
        label_min_age=config.label_min_age,
    )
