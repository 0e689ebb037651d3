"""`tweetops tune` and undeclared `mlflow run -P` keys: one sentence, exit 2, no RUNNING run."""

from __future__ import annotations

import pytest

from tests.conftest import Project
from tests.support.cli import one_sentence, run_cli, run_statuses
from tweetops.cli import extra_overrides
from tweetops.errors import TweetopsError


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("tune.backend=sparky", "tune.backend"),
        ("tune.parallelism=0", "tune.parallelism"),
        ("tune.num_trees=[30,5]", "tune.num_trees"),
        ("tune.subsampling_rate=[0.9,0.5]", "tune.subsampling_rate"),
    ],
)
def test_bad_tune_setting_names_the_key(project: Project, override: str, key: str) -> None:
    done = run_cli("tune", "-S", override)
    assert done.exit_code == 2
    assert key in one_sentence(done.stderr)
    assert "RUNNING" not in run_statuses(project.root / "mlflow.db")


def test_missing_training_table_names_the_setting_and_leaves_no_running_run(
    project: Project,
) -> None:
    done = run_cli("tune", "-S", "data.training_rows=nowhere")
    assert done.exit_code == 2
    line = one_sentence(done.stderr)
    assert "nowhere" in line and "train.training_rows_dir" in line
    assert "RUNNING" not in run_statuses(project.root / "mlflow.db")


def test_max_rows_too_small_to_split_names_the_key(project: Project) -> None:
    done = run_cli("tune", "-S", "tune.max_rows=40")
    assert done.exit_code == 2
    assert "tune.max_rows=40" in one_sentence(done.stderr)
    assert "RUNNING" not in run_statuses(project.root / "mlflow.db")


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


def test_an_undeclared_key_reaches_the_step_and_is_validated(project: Project) -> None:
    done = run_cli("train", "--num_trees", "zero")
    assert done.exit_code == 2
    assert "train.num_trees='zero'" in one_sentence(done.stderr)
    done = run_cli("main", "--n_tweet", "10")
    assert done.exit_code == 2
    assert "n_tweet is unknown" in one_sentence(done.stderr)
