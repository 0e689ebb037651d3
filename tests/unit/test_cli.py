"""The CLI as users meet it: a bad value or a missing Java gives one sentence and exit code 2."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import PARAMS_FILE


def _tweetops(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tweetops", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _one_sentence(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert lines[0].startswith("error: ") and lines[0].endswith(".")
    return lines[0]


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    shutil.copy(PARAMS_FILE, tmp_path / "params.yaml")
    return tmp_path


def test_bad_param_value_names_the_key_and_exits_2(project_dir: Path) -> None:
    done = _tweetops(project_dir, "train", "-S", "num_trees=zero")
    assert done.returncode == 2
    line = _one_sentence(done.stderr)
    assert "train.num_trees='zero'" in line and "integer" in line


def test_unknown_setting_is_named(project_dir: Path) -> None:
    done = _tweetops(project_dir, "ingest", "-S", "ingest.n_tweet=10")
    assert done.returncode == 2
    assert "ingest.n_tweet is unknown" in _one_sentence(done.stderr)


def test_missing_params_file_says_where_to_run(tmp_path: Path) -> None:
    done = _tweetops(tmp_path, "features")
    assert done.returncode == 2
    assert "run from the project root" in _one_sentence(done.stderr)


def test_missing_java_is_one_sentence_not_a_py4j_traceback(project_dir: Path) -> None:
    env = {**os.environ, "JAVA_HOME": str(project_dir / "no-jdk-here")}
    done = _tweetops(project_dir, "train", env=env)
    assert done.returncode == 2
    line = _one_sentence(done.stderr)
    assert "Java 17 or newer" in line and "JAVA_HOME" in line


def test_too_old_java_is_named_with_its_version(project_dir: Path) -> None:
    java = project_dir / "jdk8" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text("#!/bin/sh\necho 'openjdk version \"1.8.0_392\"' >&2\n")
    java.chmod(java.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "JAVA_HOME": str(project_dir / "jdk8")}
    done = _tweetops(project_dir, "train", env=env)
    assert done.returncode == 2
    assert "is Java 8" in _one_sentence(done.stderr)


def test_unavailable_source_is_refused_before_anything_is_written(project_dir: Path) -> None:
    done = _tweetops(project_dir, "ingest", "-S", "source=carrier-pigeon")
    assert done.returncode == 2
    assert "ingest.source" in _one_sentence(done.stderr)
    assert not (project_dir / "data").exists()


def _store_env(project_dir: Path) -> dict[str, str]:
    return {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{project_dir / 'mlflow.db'}"}


def _statuses(project_dir: Path) -> list[str]:
    """The status of every MLflow run in the project's store (none when there is no store)."""
    if not (project_dir / "mlflow.db").exists():
        return []
    client = MlflowClient(f"sqlite:///{project_dir / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    return [run.info.status for run in client.search_runs(experiments)]


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("spark.master=bogus://x", "spark.master='bogus://x'"),
        ("spark.driver_memory=lots", "spark.driver_memory='lots'"),
    ],
)
def test_spark_settings_spark_cannot_start_with_are_one_sentence(
    project_dir: Path, setting: str, named: str
) -> None:
    done = _tweetops(project_dir, "train", "-S", setting, env=_store_env(project_dir))
    assert done.returncode == 2
    assert named in _one_sentence(done.stderr)
    assert _statuses(project_dir) == []  # refused before any run opened


@pytest.mark.slow
@pytest.mark.parametrize(
    "content", ['{"run_id": "0123", "model_uri": "runs:/0123/mo', '{"run_id": "0123"}']
)
def test_a_corrupt_or_partial_train_report_is_one_sentence(project_dir: Path, content: str) -> None:
    report = project_dir / "reports" / "train_run.json"
    report.parent.mkdir()
    report.write_text(content)
    done = _tweetops(
        project_dir, "promote", "-S", "spark.ui_enabled=false", env=_store_env(project_dir)
    )
    assert done.returncode == 2
    line = _one_sentence(done.stderr)
    assert "train_run.json" in line and "rerun `tweetops train`" in line
    assert "RUNNING" not in _statuses(project_dir)


def test_a_read_only_data_folder_is_one_sentence_naming_it(project_dir: Path) -> None:
    data = project_dir / "data"
    data.mkdir(mode=0o555)
    data.chmod(0o555)
    # root writes through permissions: drop that capability for the step's process
    command = [sys.executable, "-m", "tweetops", "ingest", "-S", "n_tweets=50"]
    if os.geteuid() == 0:
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--", *command]
    try:
        done = subprocess.run(
            command,
            cwd=project_dir,
            env=_store_env(project_dir),
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        data.chmod(0o755)
    assert done.returncode == 2, done.stderr
    line = _one_sentence(done.stderr)
    assert "because data is not writable (Permission denied)" in line
    assert _statuses(project_dir) == ["FAILED"]


@pytest.mark.slow
def test_a_spark_that_fails_to_start_ends_in_one_sentence_and_a_failed_run(
    project_dir: Path,
) -> None:
    done = _tweetops(
        project_dir,
        "train",
        "-S",
        'spark.conf={"spark.driver.memory": "lots"}',
        env=_store_env(project_dir),
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]  # after what the JVM itself printed
    assert last.startswith("error: Spark did not start (") and "spark.conf" in last
    assert _statuses(project_dir) == ["FAILED"]


def test_predict_help_lists_every_predict_setting(project_dir: Path) -> None:
    from tweetops.settings import PredictSettings

    done = _tweetops(project_dir, "predict", "--help", env={**os.environ, "COLUMNS": "100"})
    assert done.returncode == 0, done.stderr
    for name in PredictSettings.model_fields:
        assert f"  {name}  " in done.stdout, name
    assert "tweetops predict -S input_path=" in done.stdout
