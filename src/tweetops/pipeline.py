"""The `main` entry point: ingest -> features -> [tune ->] train -> promote as one parent run.

With `main.tune: true` the chain tunes the forest first and trains with the best params, handed
over in memory (the tune result file is still written, for DVC, and `train.tuned_from` names it
in the train run's params). The parent run carries what a user compares across runs without
opening its children, under the names train uses: the settings (`train.num_trees`, ...; when
tuned, the forest train fitted, logged once tune has chosen it), the outcome metrics (rmse, r2,
baseline r2, registered version, promoted or not) and a link to the registered version (tag
`tweetops.registered_model_uri`, and the run's description). A step done already (same code,
params and inputs, :mod:`tweetops.skipping`) is skipped: the run carries the earlier run's
results and links it (tag `tweetops.skipped.<step>`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TypeVar

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from tweetops import registry
from tweetops.contracts import TrainedModel, read_contract
from tweetops.errors import TweetopsError
from tweetops.features import FeaturesResult, build_features
from tweetops.ingest.step import IngestResult, ingest
from tweetops.progress import format_duration
from tweetops.promote import PromotionResult, promote
from tweetops.settings import Settings
from tweetops.skipping import (
    SKIPPED_TAG_PREFIX,
    earlier_run,
    latest_child_run,
    missing_train_output,
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
    and `features` are None when they were done already: `skipped` maps a skipped step to its
    earlier run, whose results `train` and `promotion` then are)."""

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
        trained = _train_or_skip(settings, tuned, run_id, skipped)
        promotion = _promote_or_skip(settings, trained, run_id, skipped)
        result = MainResult(run_id, ingested, featured, tuned, trained, promotion, skipped)
        log_outcome(settings, result)
        log.info(
            "main: done in %s, MLflow run %s",
            format_duration(time.monotonic() - started),
            run_id,
        )
        return result


T = TypeVar("T")


def _train_or_skip(
    settings: Settings, tuned: TuneResult | None, main_run_id: str, skipped: dict[str, str]
) -> TrainResult:
    """Train (with tune's best params when tuned), or reuse the earlier train run that had the
    same code, params, training rows and tuned params, while its model and report are there."""
    outcome = tuned.outcome() if tuned is not None else None
    train_settings = settings
    if outcome is not None:
        train_settings = settings.model_copy(
            update={
                "train": settings.train.model_copy(update={"tuned_from": settings.tune.result_file})
            }
        )
    client = MlflowClient()
    trained = _run_or_skip(
        train_settings,
        "train",
        main_run_id,
        lambda step_settings: train(step_settings, outcome),
        skipped,
        handed_over=outcome.best_params if outcome is not None else None,
        missing=lambda earlier: missing_train_output(
            client, earlier, settings.train.run_file, settings.promote.model_name
        ),
    )
    if trained is not None:
        return trained
    return TrainResult.from_contract(
        read_contract(settings.train.run_file, TrainedModel, written_by="train")
    )


def _promote_or_skip(
    settings: Settings, trained: TrainResult, main_run_id: str, skipped: dict[str, str]
) -> PromotionResult:
    """Promote, or leave the registry as it is when the earlier promote had the same code,
    params and train report, while the version it registered is still there."""
    client = MlflowClient()
    name = settings.promote.model_name

    def missing(_earlier: str) -> str | None:
        try:
            promotion = _earlier_promotion(settings)
            version = client.get_model_version(name, promotion.version)
        except (TweetopsError, MlflowException):
            return f"the version its report names is no version of {name} any more"
        if version.run_id != trained.run_id:
            return f"{name} v{promotion.version} is not train run {trained.run_id}'s model"
        return None

    def registry_now() -> str:
        champion = registry.champion_version(client, name)
        now = f"champion is v{champion}" if champion is not None else "it has no champion"
        return f"; the registry is left as it is: {now}"

    promotion = _run_or_skip(
        settings, "promote", main_run_id, promote, skipped, missing=missing, detail=registry_now
    )
    if promotion is not None:
        return promotion
    return replace(
        _earlier_promotion(settings), champion_after=registry.champion_version(client, name)
    )


def _earlier_promotion(settings: Settings) -> PromotionResult:
    """What the last promote wrote to `promote.promotion_file`."""
    return read_contract(settings.promote.promotion_file, PromotionResult, written_by="promote")


def _run_or_skip(
    settings: Settings,
    step: str,
    main_run_id: str,
    call: Callable[[Settings], T],
    skipped: dict[str, str],
    *,
    handed_over: Mapping[str, object] | None = None,
    missing: Callable[[str], str | None] | None = None,
    detail: Callable[[], str] | None = None,
) -> T | None:
    """Run `step`, or skip it when a successful run of it had the same code, params and inputs
    (and its outputs are unchanged since): one line, and the `main` run tagged with that run.

    `handed_over` is what the step gets in memory besides its params (fingerprinted too);
    `missing` says what of the earlier run's results is gone (then the step reruns, and says
    why); `detail` is added to the skip line.
    """
    state = stage_state(settings, step, handed_over=handed_over)
    client = MlflowClient()
    experiment_id = client.get_run(main_run_id).info.experiment_id
    if state is not None and not settings.main.force:
        earlier = earlier_run(client, experiment_id, state)
        gone = missing(earlier) if earlier is not None and missing is not None else None
        if earlier is not None and gone is not None:
            log.info(
                "%s: rerun though code, params and inputs are unchanged since MLflow run %s: %s",
                step,
                earlier,
                gone,
            )
        elif earlier is not None:
            log.info(
                "%s: skipped, code, params and inputs unchanged since MLflow run %s "
                "(-S main.force=true reruns it)%s",
                step,
                earlier,
                detail() if detail is not None else "",
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
                + _skipped_note(result.skipped)
            ),
        }
    )


def _skipped_note(skipped: dict[str, str]) -> str:
    """The description's line on steps done already, each with its earlier run."""
    if not skipped:
        return ""
    runs = ", ".join(f"{step} (run {run_id})" for step, run_id in skipped.items())
    return f"\n\nSkipped, done already with the same code, params and inputs: {runs}."
