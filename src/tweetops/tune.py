"""Tune: a Hyperopt search over the RandomForest hyperparameters, one nested MLflow run per trial.

The search space is read from the `tune` section of params.yaml; everything else about the model
(max_bins, feature subset strategy, seed) and the split comes from `train`, so a tuned setting
drops straight into `tweetops train -S num_trees=...`. Trials fit on part of train's training
split and are scored on the rest (the validation rows); train's test rows are never used, so the
test metrics of a later `train` stay an honest estimate.

:func:`search` is the core: it takes the rows and a `record_trial` callback and returns the
trials, without touching MLflow; :func:`tune` is the step, whose callback makes each trial a
nested MLflow run.

Trials run one after another with `hyperopt.Trials` on the driver: each trial is itself a
distributed Spark ML fit that uses every executor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from hyperopt import STATUS_OK, Trials, fmin, hp, rand, tpe
from pyspark.sql import DataFrame

from tweetops.dataset import load_training_rows, persist_rows, split_train_test
from tweetops.errors import TweetopsError
from tweetops.model import MIN_TRAINING_ROWS, build_pipeline, evaluate
from tweetops.runner import StepRun, run_step
from tweetops.settings import Settings, TrainSettings, TuneSettings

TUNE_SECTIONS = ("tune", "train", "spark", "mlflow")
TUNED_KEYS = ("num_trees", "max_depth", "min_instances_per_node", "subsampling_rate")

# (trial name, params, validation metrics) -> the id under which the trial was recorded
RecordTrial = Callable[[str, dict[str, Any], dict[str, float]], str]


@dataclass(frozen=True)
class TuneResult:
    """The best hyperparameters found and the trials behind them."""

    run_id: str
    best_params: dict[str, Any]
    best_validation_rmse: float
    best_trial_run_id: str
    trials: list[dict[str, Any]]
    fit_rows: int = 0
    validation_rows: int = 0
    max_evals: int = field(default=0, compare=False)

    def logged_metrics(self) -> dict[str, float]:
        """Best validation rmse and the sizes of the fit and validation rows."""
        return {"best_validation_rmse": self.best_validation_rmse,
                "fit_rows": float(self.fit_rows), "validation_rows": float(self.validation_rows)}

    def summary(self) -> str:
        """One line: the best loss and the train command that uses it."""
        overrides = " ".join(f"-S {key}={value}" for key, value in self.best_params.items())
        return (f"tune: best validation rmse {self.best_validation_rmse:.4f} after "
                f"{len(self.trials)} trials; train with it: tweetops train {overrides}")

    def report(self) -> dict[str, Any]:
        """What `tune.result_file` holds."""
        return {"run_id": self.run_id, "best_params": self.best_params,
                "best_validation_rmse": self.best_validation_rmse,
                "best_trial_run_id": self.best_trial_run_id, "max_evals": self.max_evals}


def search_space(config: TuneSettings) -> dict[str, Any]:
    """Hyperopt space: integer ranges step by one, the subsampling rate is uniform."""
    def integer(name: str, bounds: tuple[int, int]) -> Any:
        return hp.uniformint(name, bounds[0], bounds[1])

    return {
        "num_trees": integer("num_trees", config.num_trees),
        "max_depth": integer("max_depth", config.max_depth),
        "min_instances_per_node": integer("min_instances_per_node",
                                          config.min_instances_per_node),
        "subsampling_rate": hp.uniform("subsampling_rate", *config.subsampling_rate),
    }


def trial_settings(base: TrainSettings, params: dict[str, Any]) -> TrainSettings:
    """Train settings with one trial's hyperparameters (ints cast: Hyperopt yields floats)."""
    return TrainSettings.model_validate({
        **base.model_dump(), "num_trees": int(params["num_trees"]),
        "max_depth": int(params["max_depth"]),
        "min_instances_per_node": int(params["min_instances_per_node"]),
        "subsampling_rate": round(float(params["subsampling_rate"]), 4)})


def fit_and_validation_rows(rows: DataFrame, config: TuneSettings, base: TrainSettings
                            ) -> tuple[DataFrame, DataFrame]:
    """Train's training split, split again into fit and validation rows (test rows left out)."""
    train_split, _test_split = split_train_test(
        rows, seed=base.seed, test_fraction=base.test_fraction, partitions=base.split_partitions)
    fit_rows, validation_rows = train_split.randomSplit(
        [1.0 - config.validation_fraction, config.validation_fraction], seed=config.seed)
    return fit_rows, validation_rows


def search(rows: DataFrame, config: TuneSettings, base: TrainSettings,
           record_trial: RecordTrial) -> TuneResult:
    """Run the Hyperopt search over `rows`; `record_trial` records each trial and names it."""
    # every trial reads both: persisted once at train.storage_level
    fit_rows, validation_rows = (persist_rows(split, base.storage_level) for split in
                                 fit_and_validation_rows(rows, config, base))
    try:
        fit_count, validation_count = fit_rows.count(), validation_rows.count()
        if fit_count < MIN_TRAINING_ROWS or validation_count == 0:
            raise TweetopsError(
                f"Only {fit_count} fit and {validation_count} validation rows in "
                f"{base.training_dir}: ingest more tweets or change tune.validation_fraction.")
        trials = Trials()

        def objective(params: dict[str, Any]) -> dict[str, Any]:
            candidate = trial_settings(base, params)
            chosen = candidate.model_dump(include=set(TUNED_KEYS))
            model = build_pipeline(candidate).fit(fit_rows)
            metrics = evaluate(model.transform(validation_rows))
            trial_id = record_trial(f"trial-{len(trials.trials) - 1:03d}", chosen,
                                    {f"validation_{name}": value
                                     for name, value in metrics.items()})
            return {"loss": metrics["rmse"], "status": STATUS_OK, "params": chosen,
                    "run_id": trial_id}

        algorithm = tpe.suggest if config.algorithm == "tpe" else rand.suggest
        fmin(objective, search_space(config), algo=algorithm, max_evals=config.max_evals,
             trials=trials, rstate=np.random.default_rng(config.seed), show_progressbar=False)
    finally:
        fit_rows.unpersist()
        validation_rows.unpersist()

    best = trials.best_trial["result"]
    history = [{"trial": index, **trial["result"]["params"],
                "validation_rmse": trial["result"]["loss"], "run_id": trial["result"]["run_id"]}
               for index, trial in enumerate(trials.trials)]
    return TuneResult(run_id="", best_params=best["params"],
                      best_validation_rmse=float(best["loss"]), best_trial_run_id=best["run_id"],
                      trials=history, fit_rows=fit_count, validation_rows=validation_count,
                      max_evals=config.max_evals)


def record_trial_run(name: str, params: dict[str, Any], metrics: dict[str, float]) -> str:
    """Record one trial as a nested MLflow run of the active run; return its run id."""
    with mlflow.start_run(run_name=name, nested=True) as run:
        mlflow.set_tag("tweetops.step", "tune-trial")
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
    return run.info.run_id


def tune(settings: Settings) -> TuneResult:
    """Run the search in the step's MLflow run; write the best params to `tune.result_file`."""
    config, base = settings.tune, settings.train

    def core(run: StepRun) -> TuneResult:
        assert run.spark is not None
        rows = load_training_rows(run.spark, base.training_dir)
        return search(rows, config, base, record_trial_run)

    def publish(found: TuneResult, run: StepRun) -> TuneResult:
        result = replace(found, run_id=run.run_id)
        mlflow.log_params({f"best.{key}": value for key, value in result.best_params.items()})
        mlflow.set_tag("tweetops.tune.best_trial_run_id", result.best_trial_run_id)
        mlflow.log_dict({"best_params": result.best_params, "trials": result.trials},
                        "tune/trials.json")
        return result

    def reports(result: TuneResult) -> dict[Path, dict[str, Any]]:
        return {config.result_file: result.report()}

    return run_step(settings, "tune", TUNE_SECTIONS, core, needs_spark=True,
                    inputs={"training": base.training_dir}, publish=publish, reports=reports)
