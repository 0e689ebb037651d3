"""Tune: trials as nested MLflow runs in a real SQLite store, on real Spark, both backends."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from tests.conftest import Project, TrainedProject
from tweetops.contracts import TuneOutcome, read_contract
from tweetops.dataset import load_training_rows, split_train_test
from tweetops.errors import TweetopsError
from tweetops.spark import build_spark
from tweetops.train import train
from tweetops.tune.step import tune

# whole searches on Spark (SparkTrials workers, Spark ML refits): the slow loop, not `make check`
pytestmark = pytest.mark.slow

SMALL = ("tune.num_trees=[5,15]", "tune.max_depth=[3,6]")


@pytest.fixture(scope="module")
def training_rows(trained_project_template: TrainedProject) -> Path:
    """The small project's features table, read by every test of this module."""
    return (
        trained_project_template.root / trained_project_template.settings().train.training_rows_dir
    )


def _children(parent: Run) -> list[Run]:
    return MlflowClient().search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )


def test_spark_trials_run_in_workers_as_nested_runs_then_train_takes_the_best(
    project: Project, training_rows: Path
) -> None:
    # MLflow's default store kind (SQLite) and two trials at once: no "database is locked"
    settings = project.settings(
        *SMALL, f"data.training_rows={training_rows}", "tune.max_evals=2", "tune.parallelism=2"
    )
    assert settings.tune.backend == "spark_trials"
    result = tune(settings)

    client = MlflowClient()
    parent = client.get_run(result.run_id)
    children = _children(parent)
    assert len(children) == 2 == len(result.trials)
    assert {run.info.status for run in children} == {"FINISHED"}
    # recorded from Spark's Python workers, not from the driver
    assert all(run.data.tags["tweetops.tune.worker_pid"] != str(os.getpid()) for run in children)
    rmse_by_run = {run.info.run_id: run.data.metrics["validation_rmse"] for run in children}
    assert result.best_trial_run_id == min(rmse_by_run, key=rmse_by_run.get)
    assert result.best_validation_rmse == min(rmse_by_run.values())
    for run in children:
        assert 5 <= int(run.data.params["train.num_trees"]) <= 15
        assert 3 <= int(run.data.params["train.max_depth"]) <= 6
        assert run.data.tags["tweetops.step"] == "tune-trial"
        assert run.info.run_name.startswith(f"trial nt{run.data.params['train.num_trees']}-")
        # the run spans its fit: created after it, with the fit's start and end times
        fit_seconds = run.data.metrics["fit_seconds"]
        assert fit_seconds > 0.0
        assert run.info.end_time - run.info.start_time == pytest.approx(fit_seconds * 1000, abs=1)
        assert run.info.start_time >= parent.info.start_time

    metrics = parent.data.metrics
    assert metrics["best_validation_rmse"] == metrics["best_loss"] == result.best_validation_rmse
    assert metrics["refit_validation_rmse"] == result.refit_validation_rmse > 0
    # the best forest under train's names; the base settings tune searched around are not params
    assert parent.data.params["train.num_trees"] == str(result.best_params["num_trees"])
    assert not any(key.startswith("best.") for key in parent.data.params)
    assert parent.data.tags["tweetops.tune.best_trial_run_id"] == result.best_trial_run_id
    assert parent.data.tags["tweetops.data.training.dvc_md5"].endswith(".dir")
    assert parent.info.run_name.startswith("tune spark_trials x2 data:")
    artifacts = {item.path for item in client.list_artifacts(result.run_id, "tune")}
    assert {"tune/trials.csv", "tune/loss-by-trial.png"} <= artifacts
    table = pd.read_csv(client.download_artifacts(result.run_id, "tune/trials.csv"))
    assert sorted(table["run_id"]) == sorted(rmse_by_run)
    # the loss-by-trial table dvc.yaml's plots draw, in the workspace
    plotted = pd.read_csv(settings.tune.trials_plot_file)
    assert list(plotted.columns) == ["trial", "validation_rmse", "best_so_far"]
    assert list(plotted["trial"]) == sorted(table["trial"])
    assert sorted(plotted["validation_rmse"]) == pytest.approx(sorted(rmse_by_run.values()))
    assert list(plotted["best_so_far"]) == list(plotted["validation_rmse"].cummin())

    outcome = read_contract(settings.tune.result_file, TuneOutcome, written_by="tune")
    assert outcome.best_params == result.best_params and outcome.run_id == result.run_id

    # fit + validation rows are exactly train's training split: the test rows stay unseen
    spark = build_spark(settings.spark)
    train_split, _test_split = split_train_test(
        load_training_rows(spark, settings.train.training_rows_dir),
        seed=settings.train.seed,
        test_fraction=settings.train.test_fraction,
        partitions=settings.train.split_partitions,
    )
    assert metrics["fit_rows"] + metrics["validation_rows"] == train_split.count()

    trained = train(
        project.settings(
            f"data.training_rows={training_rows}", f"train.tuned_from={settings.tune.result_file}"
        )
    )
    train_run = client.get_run(trained.run_id)
    for key, value in result.best_params.items():
        assert train_run.data.params[f"train.{key}"] == str(value)
    assert train_run.data.tags["tweetops.tuned_from.run_id"] == result.run_id
    assert train_run.info.run_name.endswith(" tuned")


def test_same_seed_same_trials_with_parallelism_1(project: Project, training_rows: Path) -> None:
    settings = project.settings(
        *SMALL, f"data.training_rows={training_rows}", "tune.max_evals=3", "tune.parallelism=1"
    )
    first, second = tune(settings), tune(settings)

    def sequence(trials: list[dict]) -> list[dict]:
        return [{k: v for k, v in trial.items() if k != "run_id"} for trial in trials]

    assert sequence(first.trials) == sequence(second.trials)
    assert len({trial["num_trees"] for trial in first.trials}) > 1  # a search, not one point
    other = tune(
        project.settings(
            *SMALL,
            f"data.training_rows={training_rows}",
            "tune.max_evals=3",
            "tune.parallelism=1",
            "tune.seed=7",
        )
    )
    assert sequence(other.trials) != sequence(first.trials)


def test_mllib_backend_fits_spark_ml_per_trial(project: Project, training_rows: Path) -> None:
    settings = project.settings(
        *SMALL, f"data.training_rows={training_rows}", "tune.max_evals=2", "tune.backend=mllib"
    )
    result = tune(settings)
    parent = MlflowClient().get_run(result.run_id)
    children = _children(parent)
    assert len(children) == 2
    assert {run.data.tags["tweetops.tune.backend"] for run in children} == {"mllib"}
    # the refit is the same Spark ML fit as the best trial: the same score
    assert result.refit_validation_rmse == pytest.approx(result.best_validation_rmse)
    assert parent.data.params["tune.backend"] == "mllib"


@pytest.mark.parametrize(
    ("backend", "timeout_s", "max_evals"),
    [
        ("mllib", 1, 50),  # a Spark ML fit takes longer than the bound: one trial
        ("spark_trials", 15, 500),  # SparkTrials stops launching trials once the bound passed
    ],
)
def test_timeout_bounds_the_search(
    project: Project, training_rows: Path, backend: str, timeout_s: int, max_evals: int
) -> None:
    settings = project.settings(
        *SMALL,
        f"data.training_rows={training_rows}",
        f"tune.backend={backend}",
        f"tune.timeout_s={timeout_s}",
        f"tune.max_evals={max_evals}",
    )
    result = tune(settings)
    assert 1 <= len(result.trials) < max_evals
    # every trial of the table has its nested run (a trial SparkTrials cancelled at the bound
    # may have recorded one too)
    children = _children(MlflowClient().get_run(result.run_id))
    counted = {trial["run_id"] for trial in result.trials}
    assert counted <= {run.info.run_id for run in children}
    for run in children:  # the others are marked, and none is left RUNNING
        assert run.info.status != "RUNNING"
        assert (run.data.tags.get("tweetops.tune.trial_state") == "uncounted") == (
            run.info.run_id not in counted
        )


def test_a_search_whose_every_trial_was_cancelled_says_so_in_one_sentence(
    project: Project, training_rows: Path
) -> None:
    # forests this big take longer than the bound: SparkTrials cancels every trial
    settings = project.settings(
        "tune.num_trees=[400,500]",
        "tune.max_depth=[12,14]",
        f"data.training_rows={training_rows}",
        "tune.timeout_s=1",
        "tune.max_evals=2",
        "tune.parallelism=1",
    )
    with pytest.raises(TweetopsError, match=r"^No trial finished within tune.timeout_s=1: raise"):
        tune(settings)
    client = MlflowClient()
    experiment = client.get_experiment_by_name(settings.mlflow.experiment)
    runs = client.search_runs([experiment.experiment_id])
    assert runs and all(run.info.status != "RUNNING" for run in runs)
