"""Spark's stream, Spark's batch twin and the DuckDB oracle agree row for row on hostile data.

Which micro-batch a part file lands in decides what is late, so the comparisons use inputs where
the documented semantics fix the answer: a one-shot run reading every file in one micro-batch
(stream = batch twin = oracle), and a run with one file per micro-batch in a fixed order (file
modification times set apart, `maxFilesPerTrigger=1`), where the oracle replays the same batches
(stream = oracle; the batch twin sees one batch, so it has no late tweets to compare).
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow.parquet as pq
import pytest
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from tests.conftest import Project
from tests.support.frames import build_features_batch_for
from tests.support.oracle import OracleCounts, build_oracle, compare_with_parquet
from tests.support.tweets import tweet
from tweetops.features import batch as batch_module
from tweetops.features import build_features
from tweetops.features.step import FeaturesResult
from tweetops.features.tables import EVENT_MS, author_history
from tweetops.markers import mark_complete, read_marker
from tweetops.settings import DAY_MS, Settings

START = datetime(2026, 10, 5, tzinfo=UTC)


def at(offset: timedelta) -> str:
    return (START + offset).strftime(
        "%Y-%m-%dT%H:%M:%S."
    ) + f"{(START + offset).microsecond // 1000:03d}Z"


def hostile_tweets() -> list[dict[str, Any]]:
    """Tweets built to trip a point-in-time history or a window: edges, ties, loners, retweets,
    and fetch times: young, old, unknown, before the tweet, exactly a day after it."""
    rng = random.Random(16)
    tweets = []
    crawl = at(timedelta(days=3, hours=2))  # the last day of the busy authors' tweets is young
    # busy authors, times on whole minutes so several tweets share an instant
    for n in range(240):
        author = f"{rng.randint(1, 8)}"
        minute = rng.randint(0, 3 * 24 * 60)
        tweets.append(
            tweet(
                f"{1000 + n}",
                author,
                at(timedelta(minutes=minute)),
                100 + minute // 60,
                retweet=rng.random() < 0.2,
                reply=rng.random() < 0.2,
                likes=rng.randint(0, 500),
                retweets=rng.randint(0, 20),
                hashtags=rng.randint(0, 3),
                media=rng.random() < 0.3,
            )
        )
        if n % 10:  # every tenth tweet has no fetch time: it is kept whatever its age
            tweets[-1]["fetched_at"] = crawl if n % 37 else at(timedelta(minutes=minute - 5))
    edge = "20"  # exactly 24 h, 7 d, a window's first and last millisecond apart
    for n, offset in enumerate(
        (
            timedelta(0),
            timedelta(hours=1),  # starts a window; the first tweet ends one
            timedelta(hours=2) - timedelta(milliseconds=1),  # a window's last millisecond
            timedelta(days=1),  # the first tweet is exactly 24 h before
            timedelta(days=1),  # the same instant again
            timedelta(days=1, milliseconds=1),
            timedelta(days=7),  # exactly 7 d after the first
            timedelta(days=7, hours=1),
        )
    ):
        tweets.append(tweet(f"{2000 + n}", edge, at(offset - timedelta(days=4)), 50 + n, likes=n))
        tweets[-1]["fetched_at"] = at(timedelta(days=10))
    for n in range(5):  # authors with one tweet, one of them a retweet
        tweets.append(
            tweet(f"{3000 + n}", f"{30 + n}", at(timedelta(hours=7 * n)), 9, retweet=n == 4)
        )
        # fetched exactly the minimum age after it was posted: old enough
        tweets[-1]["fetched_at"] = at(timedelta(hours=7 * n, days=1))
    return tweets


def write_parts(raw_dir: Path, parts: list[list[bytes]]) -> list[Path]:
    """Part files in this order of modification time (the stream's reading order)."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    files = []
    base = 1_700_000_000
    for n, lines in enumerate(parts):
        path = raw_dir / f"part-{len(parts) - n:05d}.jsonl"  # names against the reading order
        path.write_bytes(b"\n".join(lines) + b"\n")
        os.utime(path, (base + 10 * n, base + 10 * n))
        files.append(path)
    mark_complete(raw_dir, "ingest", {"accepted": sum(len(p) for p in parts)})
    return files


def one_shot_parts() -> list[list[bytes]]:
    """Hostile tweets across three files, out of time order, duplicated within and across."""
    lines = [orjson.dumps(record) for record in hostile_tweets()]
    random.Random(7).shuffle(lines)
    third = len(lines) // 3
    parts = [lines[:third], lines[third : 2 * third], lines[2 * third :]]
    parts[0] += lines[third + 10 : third + 14]  # duplicates in another file
    parts[1] += lines[third : third + 3]  # duplicates in the same file
    parts[2].append(b"{not a tweet")
    return parts


@pytest.fixture
def oracle() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    yield con
    con.close()


def assert_tables_equal(
    con: duckdb.DuckDBPyConnection, folders: dict[str, Path], what: str
) -> None:
    for table, folder in folders.items():
        difference = compare_with_parquet(con, table, folder)
        assert difference.equal, f"{what}: {difference}"


def stream_folders(settings: Settings) -> dict[str, Path]:
    config = settings.features
    return {
        "users": config.users_dir,
        "training": config.training_rows_dir,
        "activity": config.user_activity_dir,
    }


def batch_folders(spark: SparkSession, settings: Settings, target: Path) -> dict[str, Path]:
    config = settings.features
    tables = build_features_batch_for(spark, config)
    folders = {}
    for name, frame in zip(("users", "training", "activity"), tables, strict=True):
        frame.write.mode("overwrite").parquet(str(target / name))
        folders[name] = target / name
    return folders


def assert_counts(result: FeaturesResult, expected: OracleCounts) -> None:
    assert (result.late, result.duplicates, result.waiting, result.too_young) == (
        expected.late,
        expected.duplicates,
        expected.waiting,
        expected.too_young,
    )


@pytest.mark.parametrize(
    ("slide", "flush", "min_age"),
    [
        # a streaming run per shape: `make test` only (`make check` keeps the batch twin against
        # the oracle, in the leaking-history test below)
        pytest.param(None, False, "1 day", marks=pytest.mark.slow),
        pytest.param("30 minutes", False, None, marks=pytest.mark.slow),
        pytest.param("20 minutes", True, "1 day", marks=pytest.mark.slow),
    ],
)
def test_one_shot_stream_batch_and_oracle_agree(
    project: Project,
    spark: SparkSession,
    oracle: duckdb.DuckDBPyConnection,
    tmp_path: Path,
    slide: str | None,
    flush: bool,
    min_age: str | None,
) -> None:
    overrides = [
        "features.watermark=3 hours",
        f"features.flush_at_end={str(flush).lower()}",
        f"features.label_min_age={min_age or 'null'}",
    ]
    if slide:
        overrides.append(f"features.activity_slide={slide}")
    settings = project.settings(*overrides)
    files = write_parts(settings.features.raw_dir, one_shot_parts())
    result = build_features(settings)
    assert result.micro_batches == 1 and result.rejected == 1

    expected = build_oracle(
        oracle,
        [files],
        watermark="3 hours",
        activity_window="1 hour",
        activity_slide=slide,
        flush_at_end=flush,
        label_min_age=min_age,
    )
    assert expected.duplicates == 7 and expected.late == 0
    assert expected.waiting == 0 if flush else expected.waiting > 0  # the last three hours
    assert expected.too_young > 0 if min_age else expected.too_young == 0
    assert_counts(result, expected)
    assert_tables_equal(oracle, stream_folders(settings), "stream vs oracle")
    assert_tables_equal(
        oracle, batch_folders(spark, settings, tmp_path / "batch"), "batch vs oracle"
    )
    # the data reaches every branch: real history, none, several tweets within 24 h
    reached = oracle.execute(
        "SELECT count(*) FILTER (WHERE author_has_history), "
        "count(*) FILTER (WHERE NOT author_has_history), max(author_tweets_24h) FROM training"
    ).fetchone()
    assert reached is not None
    with_history, without_history, most_in_a_day = reached
    assert with_history > 0 and without_history > 0 and most_in_a_day > 1


@pytest.mark.slow
def test_flush_at_end_counts_what_it_flushes(
    project: Project, oracle: duckdb.DuckDBPyConnection
) -> None:
    settings = project.settings("features.watermark=3 hours", "features.label_min_age=null")
    files = write_parts(settings.features.raw_dir, one_shot_parts())
    waiting = build_oracle(oracle, [files], watermark="3 hours").waiting
    result = build_features(settings)  # flush_at_end is on for one-shot runs by default
    assert waiting > 0
    assert (result.flushed, result.waiting) == (waiting, 0)
    assert f"({waiting} flushed at the end), 0 original tweets waiting" in result.summary()
    metrics = result.logged_metrics()
    assert (metrics["features_flushed"], metrics["features_waiting"]) == (waiting, 0)
    marker = read_marker(settings.features.training_rows_dir)
    assert marker is not None
    assert (marker["counts"]["flushed"], marker["counts"]["waiting"]) == (waiting, 0)

    kept = build_features(
        project.settings(
            "features.watermark=3 hours",
            "features.flush_at_end=false",
            "features.label_min_age=null",
        )
    )
    assert (kept.flushed, kept.waiting) == (0, waiting)
    assert kept.training_rows == result.training_rows - waiting
    assert kept.logged_metrics()["features_waiting"] == waiting
    marker = read_marker(settings.features.training_rows_dir)
    assert marker is not None and marker["counts"]["waiting"] == waiting


@pytest.mark.slow
def test_micro_batches_with_late_tweets_and_duplicates_match_the_oracle(
    project: Project, oracle: duckdb.DuckDBPyConnection
) -> None:
    tweets = hostile_tweets()
    lines = {t["id"]: orjson.dumps(t) for t in tweets}
    by_time = sorted(tweets, key=lambda t: t["created_at"])
    early, middle, recent = by_time[:100], by_time[100:200], by_time[200:]
    parts = [
        [lines[t["id"]] for t in middle],  # batch 0 sets the watermark
        # batch 1: older tweets, partly before the watermark (late), plus duplicates of batch 0
        [lines[t["id"]] for t in early] + [lines[t["id"]] for t in middle[-5:]],
        [lines[t["id"]] for t in recent] + [lines[t["id"]] for t in recent[:2]],
    ]
    settings = project.settings(
        "features.watermark=12 hours",
        "features.max_files_per_trigger=1",
        "features.flush_at_end=false",
        "features.label_min_age=1 day",
    )
    files = write_parts(settings.features.raw_dir, parts)
    result = build_features(settings)
    expected = build_oracle(
        oracle, [[f] for f in files], watermark="12 hours", label_min_age="1 day"
    )
    assert result.micro_batches == 3
    assert expected.late > 0 and expected.duplicates == 7 and expected.too_young > 0
    assert_counts(result, expected)
    assert_tables_equal(oracle, stream_folders(settings), "stream vs oracle")


def leaking_author_history(tweets: DataFrame) -> DataFrame:
    """The author history with one off-by-one: the 24 h count sees same-instant tweets."""
    with_tie = Window.partitionBy("user_id").orderBy(EVENT_MS).rangeBetween(-DAY_MS, 0)
    return author_history(tweets).withColumn(
        "author_tweets_24h", F.count(F.lit(1)).over(with_tie) - 1
    )


def test_a_leaking_history_fails_the_comparison(
    project: Project,
    spark: SparkSession,
    oracle: duckdb.DuckDBPyConnection,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = project.settings(
        "features.watermark=3 hours", "features.flush_at_end=false", "features.label_min_age=null"
    )
    files = write_parts(settings.features.raw_dir, one_shot_parts())
    build_oracle(oracle, [files], watermark="3 hours")
    monkeypatch.setattr(batch_module, "author_history", leaking_author_history)
    folders = batch_folders(spark, settings, tmp_path / "leaking")
    leaked = compare_with_parquet(oracle, "training", folders["training"])
    counted = oracle.execute("SELECT count(*) FROM training").fetchone()
    assert counted is not None
    rows = counted[0]
    # only the tweets sharing an instant with another tweet of their author differ
    assert 0 < leaked.rows_only_oracle == leaked.rows_only_other < rows
    # the rest of the leaking run is right: only the history gives it away
    assert compare_with_parquet(oracle, "users", folders["users"]).equal
    assert compare_with_parquet(oracle, "activity", folders["activity"]).equal


def as_written_before_fetched_at(spark: SparkSession, checkpoint_dir: Path) -> None:
    """Turn a checkpoint into one an earlier release wrote: no `fetched_at` in the history, no
    waiting or too-young counts in the committed state."""
    for folder in (checkpoint_dir.resolve() / "history").glob("batch_id=*"):
        older = folder.with_name(f"older-{folder.name}")
        spark.read.parquet(str(folder)).drop("fetched_at").write.parquet(str(older))
        shutil.rmtree(folder)
        older.rename(folder)
    for path in (checkpoint_dir / "state").glob("*.json"):
        state = orjson.loads(path.read_bytes())
        path.write_bytes(orjson.dumps({k: v for k, v in state.items() if k not in OLD_STATE}))


OLD_STATE = ("waiting", "too_young")


@pytest.mark.slow
def test_an_old_checkpoint_without_fetched_at_continues_as_the_oracle_says(
    project: Project, spark: SparkSession, oracle: duckdb.DuckDBPyConnection
) -> None:
    by_time = sorted(hostile_tweets(), key=lambda t: t["created_at"])
    old = [orjson.dumps({k: v for k, v in t.items() if k != "fetched_at"}) for t in by_time[:150]]
    settings = project.settings(
        "features.watermark=12 hours",
        "features.incremental=true",
        "features.flush_at_end=false",
        "features.label_min_age=1 day",
    )
    config = settings.features
    [old_file] = write_parts(config.raw_dir, [old])
    build_features(settings)
    as_written_before_fetched_at(spark, config.checkpoint_dir)
    new_file = config.raw_dir / "part-00000.jsonl"  # read after the old file
    new_file.write_bytes(b"\n".join(orjson.dumps(t) for t in by_time[150:]) + b"\n")
    os.utime(new_file, (1_700_000_100, 1_700_000_100))
    mark_complete(config.raw_dir, "ingest", {"accepted": len(by_time)})

    result = build_features(settings)
    expected = build_oracle(
        oracle, [[old_file], [new_file]], watermark="12 hours", label_min_age="1 day"
    )
    assert result.micro_batches == 1
    assert_counts(result, expected)
    assert_tables_equal(oracle, stream_folders(settings), "old checkpoint vs oracle")
    # old tweets that waited behind the watermark became training rows now, age unknown (kept)
    emitted_now = pq.read_table(config.training_rows_dir / "batch_id=1").to_pylist()
    old_ids = {t["id"] for t in by_time[:150]}
    from_old = [row["age_at_fetch_hours"] for row in emitted_now if row["tweet_id"] in old_ids]
    assert from_old and all(age is None for age in from_old)
    assert expected.too_young > 0  # the new tweets' fetch times still count


def three_weeks_of_tweets() -> list[dict[str, Any]]:
    """Histories longer than the 7-day window, read a few days per micro-batch: the training
    rows of the later batches need tweets older than any window (the job's author carry)."""
    rng = random.Random(21)
    tweets = []
    for n in range(360):
        minute = rng.randint(0, 21 * 24 * 60)
        tweets.append(
            tweet(
                f"{5000 + n}",
                f"{rng.randint(1, 5)}",
                at(timedelta(minutes=minute)),
                100 + minute // 600,
                retweet=rng.random() < 0.25,
                likes=rng.randint(0, 300),
            )
        )
    # exactly 7 d and 24 h apart across the batches, and a tie at the end
    for n, offset in enumerate(
        (
            timedelta(0),
            timedelta(days=7),
            timedelta(days=8),
            timedelta(days=15),
            timedelta(days=15, milliseconds=1),
            timedelta(days=20),
            timedelta(days=20),
        )
    ):
        tweets.append(tweet(f"{6000 + n}", "40", at(offset), 20 + n, likes=3 * n))
    # quiet for 16 days: the previous tweet is only in the carry
    tweets.append(tweet("6100", "41", at(timedelta(days=1)), 5, likes=4))
    tweets.append(tweet("6101", "41", at(timedelta(days=17)), 5, likes=9))
    tweets.append(tweet("6102", "42", at(timedelta(days=2)), 5, retweet=True))  # only a retweet
    tweets.append(tweet("6103", "42", at(timedelta(days=19)), 5, likes=1))
    return tweets


@pytest.mark.slow
@pytest.mark.parametrize("flush", [False, True])
def test_histories_longer_than_the_window_match_the_oracle_batch_by_batch(
    project: Project,
    spark: SparkSession,
    oracle: duckdb.DuckDBPyConnection,
    tmp_path: Path,
    flush: bool,
) -> None:
    by_time = sorted(three_weeks_of_tweets(), key=lambda t: t["created_at"])
    sixth = len(by_time) // 6
    parts = [by_time[n * sixth : (n + 1) * sixth] for n in range(5)] + [by_time[5 * sixth :]]
    settings = project.settings(
        "features.max_files_per_trigger=1",
        f"features.flush_at_end={str(flush).lower()}",
        "features.label_min_age=null",
    )
    config = settings.features
    files = write_parts(config.raw_dir, [[orjson.dumps(t) for t in part] for part in parts])
    result = build_features(settings)
    expected = build_oracle(oracle, [[f] for f in files], flush_at_end=flush)
    assert result.micro_batches == 6 and expected.late == 0
    assert_counts(result, expected)
    assert_tables_equal(oracle, stream_folders(settings), "stream vs oracle")
    assert_tables_equal(oracle, batch_folders(spark, settings, tmp_path / "batch"), "batch")
    # the later batches did carry tweets older than their window, and the data needs them
    carried = [
        pq.read_table(folder).to_pylist()
        for folder in (config.checkpoint_dir / "carry").glob("batch_id=*")
    ]
    assert carried and sum(row["carry_originals"] for rows in carried for row in rows) > 0
    quiet = oracle.execute(
        "SELECT days_since_author_previous_tweet FROM training WHERE tweet_id = '6101'"
    ).fetchone()
    assert quiet is not None and quiet[0] == pytest.approx(16.0)
