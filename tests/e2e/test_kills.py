"""Killed and concurrent steps as real processes: what survives, what is refused, what is KILLED."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock
from mlflow.tracking import MlflowClient

from tests.conftest import TEST_SPARK_OVERRIDES, Project, copy_settings
from tests.support.snapshots import snapshot_hashes
from tweetops.dataset import load_training_rows
from tweetops.errors import TweetopsError
from tweetops.features import stream_feature_tables
from tweetops.ingest import staging
from tweetops.ingest.snapshot import part_files
from tweetops.ingest.step import ingest
from tweetops.tracking import HOST_TAG, NOTE_TAG, PID_TAG

pytestmark = pytest.mark.slow

RAW = Path("data/raw")
TWEETS = RAW / "tweets"
BIG_INGEST = ("ingest.n_tweets=200000", "ingest.n_users=5000", "ingest.tweets_per_file=500")


def _spawn(project_root: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{project_root / 'mlflow.db'}"}
    return subprocess.Popen(
        [sys.executable, "-m", "tweetops", *args],
        cwd=project_root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _when(
    condition: Callable[[], bool], process: subprocess.Popen[str], timeout: float = 120
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.05)


def _kill(process: subprocess.Popen[str], signum: int = signal.SIGKILL) -> tuple[int, str]:
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    return process.returncode, stderr


def _runs(step: str) -> list:
    client = MlflowClient()
    experiment = client.get_experiment_by_name("tweetops")
    return [
        run
        for run in client.search_runs([experiment.experiment_id])
        if run.data.tags.get("tweetops.step") == step
    ]


def test_kill_9_during_a_replace_ingest_leaves_the_old_snapshot_byte_for_byte(
    project: Project,
) -> None:
    ingest(project.settings("ingest.n_tweets=300", "ingest.tweets_per_file=100"))
    before = snapshot_hashes()
    process = _spawn(project.root, "ingest", *(f"-S{o}" for o in BIG_INGEST))
    staged = staging.staging_dir(TWEETS)
    _when(lambda: len(part_files(staged)) >= 1, process)
    assert _kill(process)[0] == -signal.SIGKILL

    assert snapshot_hashes() == before
    ingest(project.settings("ingest.n_tweets=300", "ingest.tweets_per_file=100"))
    assert not staged.exists()  # the killed run's leftovers were discarded
    assert snapshot_hashes() == before


def test_features_refuses_a_snapshot_a_killed_append_left_half_written(
    project: Project, spark
) -> None:
    ingest(project.settings("ingest.n_tweets=300", "ingest.tweets_per_file=100"))
    process = _spawn(
        project.root,
        "ingest",
        "-Singest.mode=append",
        "-Singest.seed=7",
        *(f"-S{o}" for o in BIG_INGEST),
    )
    _when(lambda: len(part_files(TWEETS)) >= 4, process)
    _kill(process)

    settings = project.settings()
    with pytest.raises(TweetopsError, match=r"incomplete.*rerun `tweetops ingest`"):
        stream_feature_tables(spark, settings.features)
    assert not settings.features.training_rows_dir.exists()


def test_training_refuses_the_table_of_a_killed_features_run(project: Project, spark) -> None:
    ingest(project.settings("ingest.n_tweets=3000", "ingest.tweets_per_file=150"))
    # one part file per micro-batch, so the run is killed between two of its 20 batches
    process = _spawn(
        project.root,
        "features",
        "-Sfeatures.max_files_per_trigger=1",
        *(f"-S{o}" for o in TEST_SPARK_OVERRIDES),
    )
    training = project.settings().train.training_rows_dir
    _when(lambda: len(list(training.glob("batch_id=*/*.parquet"))) >= 2, process, timeout=300)
    _kill(process)

    with pytest.raises(TweetopsError, match=r"incomplete.*rerun `tweetops features`"):
        load_training_rows(spark, training)


def test_sigterm_and_sigint_end_the_run_killed(project: Project) -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        shutil.rmtree(RAW, ignore_errors=True)  # wait for this run's first part, not the last's
        process = _spawn(project.root, "ingest", *(f"-S{o}" for o in BIG_INGEST))
        _when(lambda: len(part_files(staging.staging_dir(TWEETS))) >= 1, process)
        code, stderr = _kill(process, signum)
        assert code == 128 + signum, stderr[-3000:]
        assert "Traceback" not in stderr
        assert f"stopped by {signal.Signals(signum).name}" in stderr
    runs = _runs("ingest")
    assert [run.info.status for run in runs] == ["KILLED", "KILLED"]
    assert all(run.data.tags[PID_TAG].isdigit() and run.data.tags[HOST_TAG] for run in runs)


def test_a_run_left_running_by_kill_9_is_marked_killed_by_the_next_step(project: Project) -> None:
    process = _spawn(project.root, "ingest", *(f"-S{o}" for o in BIG_INGEST))
    _when(lambda: len(part_files(staging.staging_dir(TWEETS))) >= 1, process)
    _kill(process)
    [killed] = _runs("ingest")
    assert killed.info.status == "RUNNING"
    assert killed.data.tags[PID_TAG] == str(process.pid)

    ingest(project.settings("ingest.n_tweets=100"))

    runs = {run.info.run_id: run for run in _runs("ingest")}
    assert runs[killed.info.run_id].info.status == "KILLED"
    assert str(process.pid) in runs[killed.info.run_id].data.tags[NOTE_TAG]
    assert sorted(run.info.status for run in runs.values()) == ["FINISHED", "KILLED"]


def _waits_for_a_lock(process: subprocess.Popen[str]) -> bool:
    """Whether the process's main thread sleeps: between two tries of a lock filelock sleeps.

    A step starting up imports and reads (it does not sleep) until it reaches the store's lock;
    the lock is held by the test, so the first sleep is the wait for it.
    """
    try:
        return "nanosleep" in Path(f"/proc/{process.pid}/wchan").read_text()
    except OSError:
        return False


def test_two_steps_at_once_on_a_fresh_store_both_succeed(tmp_path: Path) -> None:
    root = tmp_path / "fresh"
    root.mkdir()
    copy_settings(root)
    store = root / "mlflow.db"
    # the test holds the store's lock until both steps wait for it, then lets them go at once:
    # the race on the fresh store happens every time, and the lock must settle it
    with FileLock(str(store.with_name("mlflow.db.lock"))):
        processes = [
            _spawn(
                root,
                "ingest",
                "-Singest.n_tweets=50",
                f"-Sdata.raw=data/r{i}",
                f"-Sdata.raw_tweets=data/r{i}/tweets",
                f"-Sdata.raw_manifests=data/r{i}/manifests",
                f"-Sdata.raw_quarantine=data/r{i}/quarantine",
            )
            for i in range(2)
        ]
        for process in processes:
            _when(lambda: _waits_for_a_lock(process), process)  # noqa: B023
        assert not store.exists()  # neither touched the store without the lock
    for process in processes:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
    client = MlflowClient(f"sqlite:///{store}")
    [experiment] = [e for e in client.search_experiments() if e.name == "tweetops"]
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(run.info.status for run in runs) == ["FINISHED", "FINISHED"]
