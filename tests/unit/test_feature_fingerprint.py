"""Same input, same fingerprint: rebuilding the feature tables gives byte-identical files."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from tests.conftest import Project
from tweetops.features import build_features
from tweetops.features.parquet import write_stable
from tweetops.ingest.step import ingest
from tweetops.tracking import data_label, dvc_hash


def _hashes(folders: dict[str, Path]) -> dict[str, str | None]:
    return {name: dvc_hash(folder) for name, folder in folders.items()}


@pytest.mark.slow
def test_rebuilding_features_from_the_same_snapshot_gives_the_same_dvc_md5(
    project: Project,
) -> None:
    settings = project.settings(
        "ingest.n_tweets=600", "ingest.n_users=60", "ingest.tweets_per_file=200"
    )
    ingest(settings)
    config = settings.features
    tables = {
        "users": config.users_dir,
        "training_rows": config.training_rows_dir,
        "user_activity": config.user_activity_dir,
    }
    build_features(settings)
    first, first_label = _hashes(tables), data_label(config.training_rows_dir)
    build_features(settings)  # not incremental: clears the tables and rebuilds them
    assert _hashes(tables) == first
    assert data_label(config.training_rows_dir) == first_label != "data:none"
    assert all(digest is not None for digest in first.values())

    # new data, new fingerprint
    ingest(project.settings("ingest.n_tweets=600", "ingest.n_users=60", "ingest.seed=7"))
    build_features(settings)
    assert data_label(config.training_rows_dir) != first_label


@pytest.mark.slow  # make check keeps the keyed stable write
def test_stable_writes_name_parts_without_a_uuid_and_ignore_row_order(
    spark: SparkSession, tmp_path: Path
) -> None:
    rows = [(i, f"user{i % 7}", float(i) / 3) for i in range(200)]
    frame = spark.createDataFrame(rows, "id long, name string, score double")
    write_stable(frame, tmp_path / "a")
    write_stable(spark.createDataFrame(rows[::-1], frame.schema).repartition(3), tmp_path / "b")
    names = sorted(path.name for path in (tmp_path / "a").iterdir())
    assert names == sorted(path.name for path in (tmp_path / "b").iterdir())
    assert [name for name in names if name.endswith(".parquet")] == [
        f"part-0000{i}-c000.snappy.parquet" for i in range(4)
    ]
    assert dvc_hash(tmp_path / "a") == dvc_hash(tmp_path / "b")


def test_stable_writes_by_a_unique_key_ignore_row_order(
    spark: SparkSession, tmp_path: Path
) -> None:
    rows = [(i, f"user{i % 7}", float(i % 5) / 3) for i in range(200)]
    frame = spark.createDataFrame(rows, "id long, name string, score double")
    write_stable(frame, tmp_path / "a", ["id"])
    shuffled = spark.createDataFrame(rows[::-1], frame.schema).repartition(3)
    write_stable(shuffled, tmp_path / "b", ["id"])
    assert dvc_hash(tmp_path / "a") == dvc_hash(tmp_path / "b")
    back = spark.read.parquet(str(tmp_path / "a"))
    assert sorted(tuple(row) for row in back.collect()) == rows  # every row, as written
    for part in sorted((tmp_path / "a").glob("*.parquet")):  # each file in key order
        ids = [row.id for row in spark.read.parquet(str(part)).collect()]
        assert ids == sorted(ids)


def test_stable_writes_refuse_a_key_the_frame_lacks(spark: SparkSession, tmp_path: Path) -> None:
    frame = spark.createDataFrame([(1, "a")], "id long, name string")
    with pytest.raises(ValueError, match=r"key columns \['tweet_id'\] are not in the frame"):
        write_stable(frame, tmp_path / "a", ["tweet_id"])
