"""Promote: register a training run's model and move the registry aliases.

The new version gets alias `challenger`. Alias `champion` moves to it when there is no champion
yet, or when the challenger's rmse beats the champion's on the same test rows: the test split of
the challenger's training run, rebuilt from that run's own split settings. The rule itself is
:func:`decide_promotion`, a pure function; :func:`promote` is the step around it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import mlflow
import mlflow.spark
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from pyspark.sql import DataFrame

from tweetops.contracts import TrainedModel, read_contract
from tweetops.dataset import load_training_rows, split_train_test
from tweetops.model import evaluate
from tweetops.runner import StepRun, run_step
from tweetops.settings import Settings

CHALLENGER = "challenger"
CHAMPION = "champion"
PROMOTE_SECTIONS = ("promote", "spark")


@dataclass(frozen=True)
class PromotionDecision:
    """Whether the challenger becomes champion, and why, in one sentence."""

    promoted: bool
    reason: str


def decide_promotion(challenger_version: str, challenger_rmse: float,
                     champion_version: str | None, champion_rmse: float | None,
                     test_rows: int) -> PromotionDecision:
    """The champion rule: a challenger wins when there is no champion or its rmse is lower.

    Both rmses are measured on the same `test_rows` rows. A challenger that already is the
    champion stays it.
    """
    if champion_version is None:
        return PromotionDecision(True, "no champion yet")
    if champion_version == challenger_version:
        return PromotionDecision(True, "already champion")
    if champion_rmse is None:
        raise ValueError("a champion other than the challenger needs its rmse to be compared")
    promoted = challenger_rmse < champion_rmse
    verdict = "beats" if promoted else "does not beat"
    return PromotionDecision(promoted, (
        f"challenger rmse {challenger_rmse:.4f} {verdict} champion v{champion_version} "
        f"rmse {champion_rmse:.4f} on the same {test_rows} test rows"))


@dataclass(frozen=True)
class PromotionResult:
    """What promote did, and why."""

    model_name: str
    version: str
    promoted: bool
    reason: str
    challenger_rmse: float
    champion_version: str | None
    champion_rmse: float | None

    def logged_metrics(self) -> dict[str, float]:
        """The challenger's rmse, the champion's when compared, and whether it was promoted."""
        return {"challenger_rmse": self.challenger_rmse, "promoted": float(self.promoted),
                **({"champion_rmse": self.champion_rmse}
                   if self.champion_rmse is not None else {})}

    def summary(self) -> str:
        """One line: the new version, the champion alias, and the reason."""
        alias = f"now {CHAMPION}" if self.promoted else f"{CHAMPION} unchanged"
        return (f"promote: {self.model_name} v{self.version} is {CHALLENGER}; {alias} "
                f"({self.reason})")


def held_out_rows(rows: DataFrame, trained: TrainedModel) -> DataFrame:
    """The test split of the training run `trained`, rebuilt from its own split settings."""
    split = trained.split
    _, test = split_train_test(rows, seed=split.seed, test_fraction=split.test_fraction,
                               partitions=split.split_partitions)
    return test


def promote(settings: Settings) -> PromotionResult:
    """Register the model of the run named in `promote.run_file` and decide on `champion`."""
    config = settings.promote
    trained = read_contract(config.run_file, TrainedModel, written_by="train")

    def core(run: StepRun) -> PromotionResult:
        assert run.spark is not None
        client = MlflowClient()
        name = config.model_name
        version = str(mlflow.register_model(
            trained.model_uri, name, tags={"tweetops.train_run_id": trained.run_id}).version)
        client.set_registered_model_alias(name, CHALLENGER, version)
        champion = _version_by_alias(client, name, CHAMPION)
        champion_version = None if champion is None else str(champion.version)

        rows = load_training_rows(run.spark, Path(trained.split.training_dir))
        test = held_out_rows(rows, trained).cache()
        try:
            challenger_rmse = _rmse_of(f"models:/{name}/{version}", test)
            champion_rmse = (None if champion_version in (None, version)
                             else _rmse_of(f"models:/{name}/{champion_version}", test))
            decision = decide_promotion(version, challenger_rmse, champion_version,
                                        champion_rmse, test.count())
        finally:
            test.unpersist()
        if decision.promoted:
            client.set_registered_model_alias(name, CHAMPION, version)
        client.set_model_version_tag(name, version, "tweetops.promotion", decision.reason)
        return PromotionResult(model_name=name, version=version, promoted=decision.promoted,
                               reason=decision.reason, challenger_rmse=challenger_rmse,
                               champion_version=champion_version, champion_rmse=champion_rmse)

    def publish(result: PromotionResult, run: StepRun) -> PromotionResult:
        mlflow.set_tags({"tweetops.model_version": result.version,
                         "tweetops.promotion": result.reason})
        return result

    return run_step(settings, "promote", PROMOTE_SECTIONS, core, needs_spark=True,
                    publish=publish,
                    reports=lambda result: {config.promotion_file: asdict(result)})


def _version_by_alias(client: MlflowClient, name: str, alias: str) -> Any | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def _rmse_of(model_uri: str, test: DataFrame) -> float:
    model = mlflow.spark.load_model(model_uri)
    return evaluate(model.transform(test))["rmse"]
