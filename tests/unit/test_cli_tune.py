"""`tweetops tune` and undeclared `mlflow run -P` keys: one sentence, exit 2, no RUNNING run."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import PARAMS_FILE
from tests.unit.test_cli import _one_sentence, _statuses, _tweetops
from tweetops.cli import extra_overrides
from tweetops.errors import TweetopsError


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    shutil.copy(PARAMS_FILE, tmp_path / "params.yaml")
    return tmp_path


def _env(project_dir: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{project_dir / 'mlflow.db'}"
    return env


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("tune.backend=sparky", "tune.backend"),
        ("tune.parallelism=0", "tune.parallelism"),
        ("tune.num_trees=[30,5]", "tune.num_trees"),
        ("tune.subsampling_rate=[0.9,0.5]", "tune.subsampling_rate"),
    ],
)
def test_bad_tune_setting_names_the_key(project_dir: Path, override: str, key: str) -> None:
    done = _tweetops(project_dir, "tune", "-S", override, env=_env(project_dir))
    assert done.returncode == 2
    assert key in _one_sentence(done.stderr)
    assert "RUNNING" not in _statuses(project_dir)


def test_missing_training_table_names_the_setting_and_leaves_no_running_run(
    project_dir: Path,
) -> None:
    done = _tweetops(project_dir, "tune", "-S", "data.training_rows=nowhere", env=_env(project_dir))
    assert done.returncode == 2
    line = _one_sentence(done.stderr)
    assert "nowhere" in line and "train.training_rows_dir" in line
    assert "RUNNING" not in _statuses(project_dir)


def test_max_rows_too_small_to_split_names_the_key(project_dir: Path) -> None:
    done = _tweetops(project_dir, "tune", "-S", "tune.max_rows=40", env=_env(project_dir))
    assert done.returncode == 2
    assert "tune.max_rows=40" in _one_sentence(done.stderr)
    assert "RUNNING" not in _statuses(project_dir)


def test_undeclared_mlflow_params_become_overrides() -> None:
    # what `mlflow run -P api_base_url=... -P train.num_trees=5` appends to the command
    assert extra_overrides(
        ["--api_base_url", "http://127.0.0.1:9", "--train.num_trees", "5", "--max-tweets=30"],
        "ingest",
    ) == ["ingest.api_base_url=http://127.0.0.1:9", "train.num_trees=5", "ingest.max_tweets=30"]
    # `main` has no section of its own: a bare key belongs to the one section that has it
    assert extra_overrides(["--n_users", "30", "--backend", "mllib"], None) == [
        "ingest.n_users=30",
        "tune.backend=mllib",
    ]
    with pytest.raises(TweetopsError, match="seed is in sections ingest, train, tune"):
        extra_overrides(["--seed", "3"], None)
    with pytest.raises(TweetopsError, match="needs a value"):
        extra_overrides(["--n_users"], "ingest")


def test_an_undeclared_key_reaches_the_step_and_is_validated(project_dir: Path) -> None:
    done = _tweetops(project_dir, "train", "--num_trees", "zero", env=_env(project_dir))
    assert done.returncode == 2
    assert "train.num_trees='zero'" in _one_sentence(done.stderr)
    done = _tweetops(project_dir, "main", "--n_tweet", "10", env=_env(project_dir))
    assert done.returncode == 2
    assert "n_tweet is unknown" in _one_sentence(done.stderr)
