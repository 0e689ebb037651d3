"""The `main` entry point: ingest -> features -> [tune ->] train -> promote as one parent run.

With `main.tune: true` the chain tunes the forest first and trains with the best params, handed
over in memory (the tune result file is still written, for DVC, and `train.tuned_from` names it
in the train run's params). The parent run carries what a user compares across runs without
opening its children, under the names train uses: the settings (`train.num_trees`, ...; when
tuned, the forest train fitted, logged once tune has chosen it), the outcome metrics (rmse, r2,
baseline r2, registered version, promoted or not) and a link to the registered version (tag
`tweetops.registered_model_uri`, and the run's description).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import mlflow
from mlflow.tracking import MlflowClient

from tweetops.features import FeaturesResult, build_features
from tweetops.ingest.step import IngestResult, ingest
from tweetops.progress import format_duration
from tweetops.promote import PromotionResult, promote
from tweetops.settings import Settings
from tweetops.skipping import (
    SKIPPED_TAG_PREFIX,
    earlier_run,
    latest_child_run,
    record_done,
    stage_state,
)
from tweetops.tracking import NOTE_CONTENT_TAG, REGISTERED_MODEL_URI_TAG, step_run
from tweetops.train import TrainResult, train
from tweetops.tune.step import TUNED_KEYS, TuneResult, tune

log = logging.getLogger(__name__)

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
    """Results of every step of one end-to-end run (`tune` is None unless main.tune; `ingest`
    and `features` are None when they were done already: `skipped` maps them to that run)."""

    run_id: str
    ingest: IngestResult | None
    features: FeaturesResult | None
    tune: TuneResult | None
    train: TrainResult
    promotion: PromotionResult
    skipped: dict[str, str]


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
    started = time.monotonic()
    # tuned: the forest settings are logged at the end, once tune has chosen them
    tuned_keys = frozenset(f"train.{key}" for key in TUNED_KEYS) if settings.main.tune else None
    with step_run(
        settings,
        "main",
        MAIN_SECTIONS,
        run_name=run_name(settings),
        exclude=tuned_keys or frozenset(),
    ) as run_id:
        log.info("main: started, MLflow run %s", run_id)
        skipped: dict[str, str] = {}
        ingested = _run_or_skip(settings, "ingest", run_id, ingest, skipped)
        featured = _run_or_skip(settings, "features", run_id, build_features, skipped)
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
        result = MainResult(run_id, ingested, featured, tuned, trained, promotion, skipped)
        log_outcome(settings, result)
        log.info(
            "main: done in %s, MLflow run %s",
            format_duration(time.monotonic() - started),
            run_id,
        )
        return result


T = TypeVar("T")


def _run_or_skip(
    settings: Settings,
    step: str,
    main_run_id: str,
    call: Callable[[Settings], T],
    skipped: dict[str, str],
) -> T | None:
    """Run `step`, or skip it when a successful run of it had the same code, params and inputs
    (and its outputs are unchanged since): one line, and the `main` run tagged with that run."""
    state = stage_state(settings, step)
    client = MlflowClient()
    experiment_id = client.get_run(main_run_id).info.experiment_id
    if state is not None and not settings.main.force:
        earlier = earlier_run(client, experiment_id, state)
        if earlier is not None:
            log.info(
                "%s: skipped, code, params and inputs unchanged since MLflow run %s "
                "(-S main.force=true reruns it)",
                step,
                earlier,
            )
            mlflow.set_tag(f"{SKIPPED_TAG_PREFIX}{step}", earlier)
            skipped[step] = earlier
            return None
    result = call(settings)
    if state is not None:
        record_done(client, latest_child_run(client, experiment_id, main_run_id, step), state)
    return result


def log_outcome(settings: Settings, result: MainResult) -> None:
    """Copy the children's key params and outcome metrics onto the active `main` run."""
    if result.tune is not None:  # the forest train fitted, under train's names
        mlflow.log_params({f"train.{key}": value for key, value in result.tune.best_params.items()})
    metrics = {
        name: result.train.metrics[name] for name in OUTCOME_METRICS if name in result.train.metrics
    }
    metrics["training_rows"] = float(result.train.train_rows + result.train.test_rows)
    if result.ingest is not None:
        metrics["ingest_accepted"] = float(result.ingest.counts.accepted)
    elif "ingest" in result.skipped:
        earlier = MlflowClient().get_run(result.skipped["ingest"]).data.metrics
        if "ingest_accepted" in earlier:
            metrics["ingest_accepted"] = earlier["ingest_accepted"]
    metrics["registered_version"] = float(result.promotion.version)
    metrics["promoted"] = float(result.promotion.promoted)
    if result.tune is not None:
        metrics["tune_best_validation_rmse"] = result.tune.best_validation_rmse
        metrics["tune_refit_validation_rmse"] = result.tune.refit_validation_rmse
        mlflow.set_tag("tweetops.tuned_from.run_id", result.tune.run_id)
    mlflow.log_metrics(metrics)
    promotion = result.promotion
    model_uri = f"models:/{promotion.model_name}/{promotion.version}"
    mlflow.set_tags(
        {
            "tweetops.train_run_id": result.train.run_id,
            "tweetops.registered_version": promotion.version,
            REGISTERED_MODEL_URI_TAG: model_uri,
            NOTE_CONTENT_TAG: (
                f"{result.train.summary()}\n\nRegistered as {model_uri} "
                f"({promotion.model_name} version {promotion.version}): {promotion.summary()}"
            ),
        }
    )
