"""Tune: a Hyperopt search over the RandomForest hyperparameters, one nested MLflow run per trial.

The search space is read from the `tune` section of params.yaml; everything else about the model
(max_bins, feature subset strategy, seed) and the split comes from `train`, so a tuned setting
drops straight into `tweetops train -S num_trees=...`. Trials fit on part of train's training
split and are scored on the rest (the validation rows); train's test rows are never used, so the
test metrics of a later `train` stay an honest estimate.

Trials run one after another with `hyperopt.Trials` on the driver: each trial is itself a
distributed Spark ML fit that uses every executor. `SparkTrials` is the tool for single-machine
learners (it runs each trial inside one Spark task, where no SparkSession exists), so it cannot
fit Spark ML models; Hyperopt's documentation gives the same advice for MLlib.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mlflow
import numpy as np
from hyperopt import STATUS_OK, Trials, fmin, hp, rand, tpe
from pyspark.sql import DataFrame

from tweetops.dataset import load_training_rows, split_train_test
from tweetops.errors import TweetopsError
from tweetops.reports import write_report
from tweetops.settings import Settings, TrainSettings, TuneSettings
from tweetops.spark import build_spark, spark_conf_for_tracking
from tweetops.tracking import log_data_lineage, log_spark_conf, step_run
from tweetops.train import MIN_TRAINING_ROWS, build_pipeline, evaluate

TUNE_SECTIONS = ("tune", "train", "spark", "mlflow")
TUNED_KEYS = ("num_trees", "max_depth", "min_instances_per_node", "subsampling_rate")


@dataclass(frozen=True)
class TuneResult:
    """The best hyperparameters found and the trials behind them."""

    run_id: str
    best_params: dict[str, Any]
    best_validation_rmse: float
    best_trial_run_id: str
    trials: list[dict[str, Any]]


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


def tune(settings: Settings) -> TuneResult:
    """Run the search in the step's MLflow run; write the best params to `tune.result_file`."""
    with step_run(settings, "tune", TUNE_SECTIONS) as run_id:
        return _tune_in_run(settings, run_id)


def _tune_in_run(settings: Settings, run_id: str) -> TuneResult:
    config, base = settings.tune, settings.train
    spark = build_spark(settings.spark)
    rows = load_training_rows(spark, base.training_dir)
    train_split, _test_split = split_train_test(
        rows, seed=base.seed, test_fraction=base.test_fraction, partitions=base.split_partitions)
    fit_rows, validation_rows = (
        split.cache() for split in train_split.randomSplit(
            [1.0 - config.validation_fraction, config.validation_fraction], seed=config.seed))
    fit_count, validation_count = fit_rows.count(), validation_rows.count()
    if fit_count < MIN_TRAINING_ROWS or validation_count == 0:
        raise TweetopsError(
            f"Only {fit_count} fit and {validation_count} validation rows in "
            f"{base.training_dir}: ingest more tweets or change tune.validation_fraction.")
    log_data_lineage("training", base.training_dir)
    log_spark_conf(spark_conf_for_tracking(spark))
    mlflow.log_metrics({"fit_rows": fit_count, "validation_rows": validation_count})

    trials = Trials()
    objective = _objective(base, fit_rows, validation_rows, trials)
    algorithm = tpe.suggest if config.algorithm == "tpe" else rand.suggest
    fmin(objective, search_space(config), algo=algorithm, max_evals=config.max_evals,
         trials=trials, rstate=np.random.default_rng(config.seed), show_progressbar=False)
    fit_rows.unpersist()
    validation_rows.unpersist()

    best = trials.best_trial["result"]
    best_params = best["params"]
    history = [{"trial": index, **trial["result"]["params"],
                "validation_rmse": trial["result"]["loss"], "run_id": trial["result"]["run_id"]}
               for index, trial in enumerate(trials.trials)]
    result = TuneResult(run_id=run_id, best_params=best_params,
                        best_validation_rmse=float(best["loss"]),
                        best_trial_run_id=best["run_id"], trials=history)
    mlflow.log_params({f"best.{key}": value for key, value in best_params.items()})
    mlflow.log_metric("best_validation_rmse", result.best_validation_rmse)
    mlflow.set_tag("tweetops.tune.best_trial_run_id", result.best_trial_run_id)
    mlflow.log_dict({"best_params": best_params, "trials": history}, "tune/trials.json")
    write_report(config.result_file, {"run_id": run_id, "best_params": best_params,
                                      "best_validation_rmse": result.best_validation_rmse,
                                      "best_trial_run_id": result.best_trial_run_id,
                                      "max_evals": config.max_evals})
    overrides = " ".join(f"-S {key}={value}" for key, value in best_params.items())
    print(f"tune: best validation rmse {result.best_validation_rmse:.4f} after "
          f"{len(history)} trials; train with it: tweetops train {overrides}", flush=True)
    return result


def _objective(base: TrainSettings, fit_rows: DataFrame, validation_rows: DataFrame,
               trials: Trials) -> Any:
    def objective(params: dict[str, Any]) -> dict[str, Any]:
        candidate = trial_settings(base, params)
        chosen = candidate.model_dump(include=set(TUNED_KEYS))
        with mlflow.start_run(run_name=f"trial-{len(trials.trials) - 1:03d}", nested=True) as run:
            mlflow.set_tag("tweetops.step", "tune-trial")
            mlflow.log_params(chosen)
            model = build_pipeline(candidate).fit(fit_rows)
            metrics = evaluate(model.transform(validation_rows))
            mlflow.log_metrics({f"validation_{name}": value for name, value in metrics.items()})
        return {"loss": metrics["rmse"], "status": STATUS_OK, "params": chosen,
                "run_id": run.info.run_id}

    return objective
