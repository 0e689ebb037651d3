"""DataFrame equality for tests: equal as multisets of rows, with the differing rows on failure."""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

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
