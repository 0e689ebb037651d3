"""The CLI as users meet it: a bad value or a missing Java gives one sentence and exit code 2.

Error paths run in this process (typer's runner); the tests that need a real process are the
ones about the process: a read-only folder for a process without root's override, and a JVM
that fails to start.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Project
from tests.support.cli import one_sentence, run_cli, run_cli_process, run_statuses


def test_bad_param_value_names_the_key_and_exits_2(project: Project) -> None:
    done = run_cli("train", "-S", "num_trees=zero")
    assert done.exit_code == 2
    line = one_sentence(done.stderr)
    assert "train.num_trees='zero'" in line and "integer" in line


def test_unknown_setting_is_named(project: Project) -> None:
    done = run_cli("ingest", "-S", "ingest.n_tweet=10")
    assert done.exit_code == 2
    assert "ingest.n_tweet is unknown" in one_sentence(done.stderr)


def test_missing_params_file_says_where_to_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    done = run_cli("features")
    assert done.exit_code == 2
    assert "run from the project root" in one_sentence(done.stderr)


def test_missing_java_is_one_sentence_not_a_py4j_traceback(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JAVA_HOME", str(project.root / "no-jdk-here"))
    done = run_cli("train")
    assert done.exit_code == 2
    line = one_sentence(done.stderr)
    assert "Java 17 or newer" in line and "JAVA_HOME" in line
    assert run_statuses(project.root / "mlflow.db") == []  # refused before any run opened


def test_too_old_java_is_named_with_its_version(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    java = project.root / "jdk8" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text("#!/bin/sh\necho 'openjdk version \"1.8.0_392\"' >&2\n")
    java.chmod(java.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("JAVA_HOME", str(project.root / "jdk8"))
    done = run_cli("train")
    assert done.exit_code == 2
    assert "is Java 8" in one_sentence(done.stderr)


def test_unavailable_source_is_refused_before_anything_is_written(project: Project) -> None:
    done = run_cli("ingest", "-S", "source=carrier-pigeon")
    assert done.exit_code == 2
    assert "ingest.source" in one_sentence(done.stderr)
    assert not (project.root / "data").exists()


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("spark.master=bogus://x", "spark.master='bogus://x'"),
        ("spark.driver_memory=lots", "spark.driver_memory='lots'"),
    ],
)
def test_spark_settings_spark_cannot_start_with_are_one_sentence(
    project: Project, setting: str, named: str
) -> None:
    done = run_cli("train", "-S", setting)
    assert done.exit_code == 2
    assert named in one_sentence(done.stderr)
    assert run_statuses(project.root / "mlflow.db") == []  # refused before any run opened


@pytest.mark.parametrize(
    "content", ['{"run_id": "0123", "model_uri": "runs:/0123/mo', '{"run_id": "0123"}']
)
def test_a_corrupt_or_partial_train_report_is_one_sentence(project: Project, content: str) -> None:
    report = project.root / "reports" / "train_run.json"
    report.parent.mkdir()
    report.write_text(content)
    done = run_cli("promote", "-S", "spark.ui_enabled=false")
    assert done.exit_code == 2
    line = one_sentence(done.stderr)
    assert "train_run.json" in line and "rerun `tweetops train`" in line
    assert "RUNNING" not in run_statuses(project.root / "mlflow.db")


def _store_env(project_dir: Path) -> dict[str, str]:
    return {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{project_dir / 'mlflow.db'}"}


def test_a_read_only_data_folder_is_one_sentence_naming_it(project: Project) -> None:
    data = project.root / "data"
    data.mkdir(mode=0o555)
    data.chmod(0o555)
    # root writes through permissions: drop that capability for the step's process
    command = [sys.executable, "-m", "tweetops", "ingest", "-S", "n_tweets=50"]
    if os.geteuid() == 0:
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--", *command]
    try:
        done = subprocess.run(
            command,
            cwd=project.root,
            env=_store_env(project.root),
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        data.chmod(0o755)
    assert done.returncode == 2, done.stderr
    line = one_sentence(done.stderr)
    # the folder it could not write, and the read-only folder that is why
    assert "could not write " in line and "data/raw because " in line
    assert "data is not writable (Permission denied)" in line
    assert run_statuses(project.root / "mlflow.db") == ["FAILED"]


@pytest.mark.slow
def test_a_spark_that_fails_to_start_ends_in_one_sentence_and_a_failed_run(
    project: Project,
) -> None:
    done = run_cli_process(
        project.root,
        "train",
        "-S",
        'spark.conf={"spark.driver.memory": "lots"}',
        env=_store_env(project.root),
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]  # after what the JVM itself printed
    assert last.startswith("error: Spark did not start (") and "spark.conf" in last
    assert run_statuses(project.root / "mlflow.db") == ["FAILED"]


def test_predict_help_lists_every_predict_setting(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tweetops.settings import PredictSettings

    monkeypatch.setenv("COLUMNS", "100")
    done = run_cli("predict", "--help")
    assert done.exit_code == 0, done.stderr
    for name in PredictSettings.model_fields:
        assert f"  {name}  " in done.stdout, name
    assert "tweetops predict -S input_path=" in done.stdout
