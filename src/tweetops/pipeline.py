"""The `main` entry point: ingest -> features -> [tune ->] train -> promote as one parent run.

With `main.tune: true` the chain tunes the forest first and trains with the best params, handed
over in memory (the tune result file is still written, for DVC, and `train.tuned_from` names it
in the train run's params). At the end the parent run gets what a
user compares across runs without opening its children: the key params (data size, seed, the
forest settings the model was trained with, tuned or not) and the outcome metrics (rmse, r2,
baseline r2, registered version, promoted or not).
"""

from __future__ import annotations

from dataclasses import dataclass

import mlflow

from tweetops.features import FeaturesResult, build_features
from tweetops.ingest.step import IngestResult, ingest
from tweetops.promote import PromotionResult, promote
from tweetops.settings import Settings
from tweetops.tracking import step_run
from tweetops.train import TrainResult, train
from tweetops.tune.step import TUNED_KEYS, TuneResult, tune

MAIN_SECTIONS = (
    "data",
    "main",
    "ingest",
    "features",
    "train",
    "tune",
    "promote",
    "spark",
    "mlflow",
)
OUTCOME_METRICS = ("rmse", "mae", "r2", "baseline_rmse", "baseline_r2", "train_rows", "test_rows")


@dataclass(frozen=True)
class MainResult:
    """Results of every step of one end-to-end run (`tune` is None unless main.tune)."""

    run_id: str
    ingest: IngestResult
    features: FeaturesResult
    tune: TuneResult | None
    train: TrainResult
    promotion: PromotionResult


def run_name(settings: Settings) -> str:
    """`main n20000 tuned` or `main n20000 nt60-d8`: what tells one chain from another."""
    model = (
        "tuned"
        if settings.main.tune
        else f"nt{settings.train.num_trees}-d{settings.train.max_depth}"
    )
    size = (
        f"n{settings.ingest.n_tweets}"
        if settings.ingest.source == "synthetic"
        else (settings.ingest.source)
    )
    return f"main {size} {model}"


def run_main(settings: Settings) -> MainResult:
    """Run the whole chain; each step is a nested MLflow run of the parent `main` run."""
    with step_run(settings, "main", MAIN_SECTIONS, run_name=run_name(settings)) as run_id:
        ingested = ingest(settings)
        featured = build_features(settings)
        tuned = tune(settings) if settings.main.tune else None
        train_settings = settings
        if tuned is not None:
            train_settings = settings.model_copy(
                update={
                    "train": settings.train.model_copy(
                        update={"tuned_from": settings.tune.result_file}
                    )
                }
            )
        trained = train(train_settings, tuned.outcome() if tuned is not None else None)
        promotion = promote(settings)
        result = MainResult(run_id, ingested, featured, tuned, trained, promotion)
        log_outcome(settings, result)
        return result


def log_outcome(settings: Settings, result: MainResult) -> None:
    """Copy the children's key params and outcome metrics onto the active `main` run."""
    forest = (
        result.tune.best_params
        if result.tune is not None
        else settings.train.model_dump(include=set(TUNED_KEYS))
    )
    mlflow.log_params(
        {
            **{f"model.{key}": value for key, value in forest.items()},
            "model.tuned": result.tune is not None,
            "model.seed": settings.train.seed,
        }
    )
    metrics = {
        name: result.train.metrics[name] for name in OUTCOME_METRICS if name in result.train.metrics
    }
    metrics["training_rows"] = float(result.train.train_rows + result.train.test_rows)
    metrics["ingest_accepted"] = float(result.ingest.counts.accepted)
    metrics["registered_version"] = float(result.promotion.version)
    metrics["promoted"] = float(result.promotion.promoted)
    if result.tune is not None:
        metrics["tune_best_validation_rmse"] = result.tune.best_validation_rmse
        metrics["tune_refit_validation_rmse"] = result.tune.refit_validation_rmse
        mlflow.set_tag("tweetops.tuned_from.run_id", result.tune.run_id)
    mlflow.log_metrics(metrics)
    mlflow.set_tags(
        {
            "tweetops.train_run_id": result.train.run_id,
            "tweetops.registered_version": result.promotion.version,
        }
    )
