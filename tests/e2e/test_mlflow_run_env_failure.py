"""A run `mlflow run` created but whose environment never started a step does not stay RUNNING."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import Project
from tests.e2e.conftest import copy_project, user_env
from tweetops.tracking import NOTE_TAG, prepare_store


def _without_pyenv() -> dict[str, str]:
    """A user's environment in which MLflow's virtualenv manager finds no pyenv."""
    env = {key: value for key, value in user_env().items() if not key.startswith("PYENV")}
    env["PATH"] = os.pathsep.join(
        [str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]
    )
    return env


@pytest.mark.slow
def test_a_run_whose_environment_failed_is_marked_killed_by_the_next_step(
    project: Project, tmp_path: Path
) -> None:
    clone = copy_project(tmp_path / "clone")
    env = _without_pyenv()
    env["MLFLOW_TRACKING_URI"] = project.tracking_uri
    failed = subprocess.run(
        [
            *(sys.executable, "-m", "mlflow", "run", str(clone), "-e", "ingest"),
            *("--env-manager", "virtualenv", "--experiment-name", "tweetops"),
        ],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert failed.returncode != 0, failed.stdout + failed.stderr
    client = MlflowClient()
    experiment = client.get_experiment_by_name("tweetops")
    assert experiment is not None
    [left] = client.search_runs([experiment.experiment_id])
    assert left.info.status == "RUNNING"  # what MLflow leaves behind on its own
    assert left.data.tags["mlflow.source.type"] == "PROJECT"

    prepare_store(project.settings())  # what the next step does before it opens its run

    run = client.get_run(left.info.run_id)
    assert run.info.status == "KILLED"
    assert "never started a step" in run.data.tags[NOTE_TAG]


def test_a_project_run_of_a_live_mlflow_run_is_left_running(project: Project) -> None:
    client = MlflowClient()
    experiment_id = client.create_experiment("tweetops")
    folder = project.root / "building"
    folder.mkdir()
    tags = {"mlflow.source.type": "PROJECT", "mlflow.source.name": str(folder)}
    building = client.create_run(experiment_id, tags=tags).info.run_id
    # a process whose command line is `... mlflow run <folder>`, as MLflow's while it builds
    sleeper = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", "mlflow", "run", str(folder)]
    )
    try:
        prepare_store(project.settings())
        assert client.get_run(building).info.status == "RUNNING"
    finally:
        sleeper.kill()
        sleeper.wait()
    prepare_store(project.settings())
    assert client.get_run(building).info.status == "KILLED"
