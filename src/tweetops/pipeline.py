"""The `main` entry point: ingest -> features -> train -> promote as one parent MLflow run."""

from __future__ import annotations

from dataclasses import dataclass

from tweetops.features import FeaturesResult, build_features
from tweetops.ingest.step import IngestResult, ingest
from tweetops.promote import PromotionResult, promote
from tweetops.settings import Settings
from tweetops.tracking import step_run
from tweetops.train import TrainResult, train

MAIN_SECTIONS = ("data", "ingest", "features", "train", "promote", "spark", "mlflow")


@dataclass(frozen=True)
class MainResult:
    """Results of every step of one end-to-end run."""

    run_id: str
    ingest: IngestResult
    features: FeaturesResult
    train: TrainResult
    promotion: PromotionResult


def run_main(settings: Settings) -> MainResult:
    """Run the whole chain; each step is a nested MLflow run of the parent `main` run."""
    with step_run(settings, "main", MAIN_SECTIONS) as run_id:
        ingested = ingest(settings)
        featured = build_features(settings)
        trained = train(settings)
        promotion = promote(settings)
        return MainResult(run_id, ingested, featured, trained, promotion)
