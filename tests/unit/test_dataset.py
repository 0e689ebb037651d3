"""`train.storage_level`: how train and tune persist the training DataFrame."""

from __future__ import annotations

import pytest
from pyspark import StorageLevel
from pyspark.sql import SparkSession

from tweetops.dataset import persist_rows


@pytest.mark.parametrize("level", ["MEMORY_ONLY", "MEMORY_AND_DISK", "DISK_ONLY", "none"])
def test_rows_are_persisted_at_the_configured_storage_level(
    spark: SparkSession, level: str
) -> None:
    rows = spark.range(10)
    persisted = persist_rows(rows, level)
    try:
        expected = StorageLevel.NONE if level == "none" else getattr(StorageLevel, level)
        assert persisted.storageLevel == expected
        assert persisted.count() == 10
    finally:
        persisted.unpersist()
