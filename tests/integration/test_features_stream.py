"""The streaming job against bad and late input, a lost checkpoint, and live mode."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from mlflow.tracking import MlflowClient
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from tests.conftest import TEST_SPARK_OVERRIDES, Project, copy_settings, enter_project
from tests.support.frames import assert_same_rows, build_features_batch_for, read_table
from tests.support.stores import STORE_NAME, copy_store
from tweetops.features import build_features
from tweetops.ingest.step import ingest
from tweetops.settings import Settings

SMALL = (
    "ingest.n_users=40",
    "ingest.tweets_per_file=100",
    "ingest.synthetic_days=1",
    "features.incremental=true",
)


def day(n: int) -> str:
    return f"ingest.synthetic_start_time=2026-10-{n:02d}T00:00:00Z"


def last_record(raw_dir: Path) -> dict:
    last = sorted(raw_dir.glob("*.jsonl"))[-1]
    return orjson.loads(last.read_bytes().splitlines()[-1])


@pytest.mark.slow
def test_late_duplicate_garbage_and_half_written_files(
    project: Project, spark: SparkSession
) -> None:
    settings = project.settings(*SMALL, "ingest.n_tweets=200", day(1))
    ingest(settings)
    first = build_features(settings)
    raw = settings.features.raw_dir
    newest = last_record(raw)
    late = {**newest, "id": "999000001", "created_at": "2026-10-01T00:30:00.000Z"}
    fresh = {**newest, "id": "999000002"}
    lines = [orjson.dumps(r) for r in (newest, late, fresh)] + [b"{not json"]
    (raw / "part-extra.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    # a part file still being written: a dot-file, never read, whatever it holds
    (raw / ".part-99999.jsonl.tmp").write_bytes(b"garbage\n" * 10)
    second = build_features(project.settings(*SMALL))
    assert first.late == first.duplicates == first.rejected == 0
    assert second.input_rows == 4
    assert (second.late, second.duplicates, second.rejected) == (1, 1, 1)
    late_rows = read_table(spark, settings.features.late_dir).collect()
    assert [row["tweet_id"] for row in late_rows] == ["999000001"]
    assert late_rows[0]["lateness_seconds"] > 0
    rejected = read_table(spark, settings.features.rejected_dir).collect()
    assert [(r["reject_reason"], r["raw_line"]) for r in rejected] == [
        ("line is not valid JSON", "{not json")
    ]
    users = read_table(spark, settings.features.users_dir)
    assert users.agg(F.sum("tweets_seen")).first()[0] == 201  # the fresh tweet, not the others


@pytest.mark.slow
def test_a_deleted_checkpoint_rebuilds_the_tables_with_one_sentence(
    project: Project, caplog: pytest.LogCaptureFixture
) -> None:
    settings = project.settings(*SMALL, "ingest.n_tweets=200", day(1))
    ingest(settings)
    first = build_features(settings)
    shutil.rmtree(settings.features.checkpoint_dir)
    with caplog.at_level(logging.WARNING, logger="tweetops"):
        again = build_features(settings)
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("will be rebuilt from scratch" in m for m in messages)
    assert again.rebuilt and again.input_rows == first.input_rows == 200
    assert (again.users, again.training_rows) == (first.users, first.training_rows)


@dataclass(frozen=True)
class ThreeRuns:
    """A project after three features runs (tables from more than one batch, the last one 12
    days after the first, so older tweets are carried), kept whole in `backup`: each test puts
    it back at the same absolute path (the query's checkpoint names the files it read by path),
    so the ingests and the runs happen once per module."""

    root: Path
    backup: Path

    def restore(self, monkeypatch: pytest.MonkeyPatch) -> Settings:
        # every file but the MLflow store, which MLflow keeps open across tests
        for kept in self.backup.iterdir():
            if kept.name != STORE_NAME and kept.is_dir():
                shutil.rmtree(self.root / kept.name, ignore_errors=True)
                shutil.copytree(kept, self.root / kept.name)
        enter_project(self.root, monkeypatch)
        return Project(self.root).settings(*THREE_RUNS)


THREE_RUNS = (*SMALL, "ingest.n_tweets=200", day(1), "features.label_min_age=null")


@pytest.fixture(scope="module")
def three_runs(
    tmp_path_factory: pytest.TempPathFactory, migrated_store_template: Path, spark: SparkSession
) -> ThreeRuns:
    """:class:`ThreeRuns`, built once for this module."""
    base = tmp_path_factory.mktemp("three-runs")
    root = base / "project"
    root.mkdir()
    copy_settings(root)
    copy_store(migrated_store_template, root)
    with pytest.MonkeyPatch.context() as patch:
        enter_project(root, patch)
        settings = Project(root).settings(*THREE_RUNS)
        ingest(settings)
        build_features(settings)
        for n in (12, 13):  # the last run 12 days after the first: older than 7 d
            appended = (*SMALL, "ingest.n_tweets=100", "ingest.mode=append", day(n))
            ingest(Project(root).settings(*appended))
            build_features(settings)
        assert any((settings.features.checkpoint_dir / "carry").iterdir())  # the last carried
    shutil.copytree(root, base / "backup")
    return ThreeRuns(root, base / "backup")


@pytest.mark.slow
@pytest.mark.parametrize("deleted", ["", "query/sources", "query/commits", "users", "carry"])
def test_a_run_after_a_deleted_checkpoint_equals_the_batch_twin_with_no_row_twice(
    three_runs: ThreeRuns, spark: SparkSession, monkeypatch: pytest.MonkeyPatch, deleted: str
) -> None:
    settings = three_runs.restore(monkeypatch)
    shutil.rmtree(settings.features.checkpoint_dir / deleted)

    again = build_features(settings)

    config = settings.features
    batch = build_features_batch_for(spark, config)
    assert again.rebuilt
    for table, expected in (
        (config.users_dir, batch.users),
        (config.training_rows_dir, batch.training),
        (config.user_activity_dir, batch.activity),
    ):
        rows = read_table(spark, table)
        assert_same_rows(rows, expected)
        assert rows.count() == rows.distinct().count()  # no row twice


def _total_lines(raw_dir: Path) -> int:
    return sum(len(p.read_bytes().splitlines()) for p in raw_dir.glob("*.jsonl"))


def _processed_rows(settings: Settings) -> int:
    states = list((settings.features.checkpoint_dir / "state").glob("*.json"))
    if not states:
        return 0
    latest = max(states, key=lambda p: int(p.stem))
    return int(json.loads(latest.read_text())["input_rows"])


def _wait_until_caught_up(settings: Settings, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 300
    while _processed_rows(settings) < _total_lines(settings.features.raw_dir):
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.5)


def _start_live(project: Project, log: Path) -> subprocess.Popen:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{project.root / 'live.db'}"}
    args = [
        sys.executable,
        "-m",
        "tweetops",
        "features",
        "-S",
        "features.trigger=continuous",
        "-S",
        "features.trigger_interval_s=1",
        # a day of synthetic tweets per batch: all younger than the default label_min_age
        "-S",
        "features.label_min_age=null",
        *(arg for override in TEST_SPARK_OVERRIDES for arg in ("-S", override)),
    ]
    return subprocess.Popen(
        args, cwd=project.root, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT
    )


def _stop(process: subprocess.Popen, log: Path) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=180) == 0, log.read_text()


@pytest.mark.slow
def test_live_mode_follows_appends_stops_cleanly_and_resumes(
    project: Project, spark: SparkSession
) -> None:
    base = ("ingest.n_users=40", "ingest.tweets_per_file=100", "ingest.synthetic_days=1")
    settings = project.settings(*base, "ingest.n_tweets=200", day(1), "features.label_min_age=null")
    ingest(settings)
    log = project.root / "live.log"
    live = _start_live(project, log)
    _wait_until_caught_up(settings, live, log)
    for n, seed in ((2, 43), (3, 44)):
        ingest(
            project.settings(
                *base, "ingest.n_tweets=150", "ingest.mode=append", day(n), f"ingest.seed={seed}"
            )
        )
        _wait_until_caught_up(settings, live, log)
    _stop(live, log)
    ingest(
        project.settings(
            *base, "ingest.n_tweets=150", "ingest.mode=append", day(4), "ingest.seed=45"
        )
    )
    restarted = _start_live(project, log)
    _wait_until_caught_up(settings, restarted, log)
    _stop(restarted, log)

    output = log.read_text()
    assert "features: batch 0:" in output and "Traceback" not in output
    config = settings.features
    batch = build_features_batch_for(spark, config, flush_at_end=False)
    assert_same_rows(read_table(spark, config.users_dir), batch.users)
    assert_same_rows(read_table(spark, config.training_rows_dir), batch.training)
    assert_same_rows(read_table(spark, config.user_activity_dir), batch.activity)
    # per micro-batch metrics of the live runs, one step per batch id
    client = MlflowClient(f"sqlite:///{project.root / 'live.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tweetops").experiment_id])
    steps = sorted(
        m.step
        for run in runs
        for m in client.get_metric_history(run.info.run_id, "batch_input_rows")
    )
    assert steps == list(range(len(steps))) and len(steps) >= 4
    assert all(run.info.status == "FINISHED" for run in runs)


@pytest.mark.slow
def test_a_checkpoint_deleted_under_a_live_job_stops_it_with_one_sentence(
    project: Project,
) -> None:
    base = ("ingest.n_users=40", "ingest.tweets_per_file=100", "ingest.synthetic_days=1")
    settings = project.settings(*base, "ingest.n_tweets=200", day(1), "features.label_min_age=null")
    ingest(settings)
    log = project.root / "live.log"
    live = _start_live(project, log)
    _wait_until_caught_up(settings, live, log)
    shutil.rmtree(settings.features.checkpoint_dir)
    ingest(
        project.settings(
            *base, "ingest.n_tweets=150", "ingest.mode=append", day(2), "ingest.seed=43"
        )
    )
    assert live.wait(timeout=300) == 2, log.read_text()
    output = log.read_text()
    assert "was deleted while features ran" in output and "Traceback" not in output


@pytest.mark.slow
def test_state_folders_a_killed_batch_left_half_written_are_overwritten(
    project: Project, spark: SparkSession
) -> None:
    settings = project.settings(
        *SMALL, "ingest.n_tweets=200", day(1), "features.label_min_age=null"
    )
    ingest(settings)
    build_features(settings)
    checkpoint = settings.features.checkpoint_dir
    last = max(int(p.stem) for p in (checkpoint / "state").glob("*.json"))
    for name in ("history", "users", "carry"):  # what a kill -9 inside the next batch leaves
        stray = checkpoint / name / f"batch_id={last + 1}"
        stray.mkdir(parents=True, exist_ok=True)
        (stray / "part-00000-cut.snappy.parquet").write_bytes(b"PAR1 cut short")
    ingest(project.settings(*SMALL, "ingest.n_tweets=100", "ingest.mode=append", day(2)))

    again = build_features(settings)

    config = settings.features
    batch = build_features_batch_for(spark, config)
    assert not again.rebuilt and again.input_rows == 100
    assert_same_rows(read_table(spark, config.users_dir), batch.users)
    assert_same_rows(read_table(spark, config.training_rows_dir), batch.training)
    assert_same_rows(read_table(spark, config.user_activity_dir), batch.activity)
