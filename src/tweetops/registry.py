"""Promote: register a training run's model and move the registry aliases.

The new version gets alias `challenger`. Alias `champion` moves to it when there is no champion
yet, or when the challenger's rmse beats the champion's on the same test rows: the test split of
the challenger's training run, rebuilt from that run's own split settings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import mlflow
import mlflow.spark
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from tweetops.dataset import load_training_rows, split_train_test
from tweetops.errors import TweetopsError
from tweetops.reports import read_report, write_report
from tweetops.settings import Settings
from tweetops.spark import build_spark
from tweetops.tracking import step_run
from tweetops.train import evaluate

CHALLENGER = "challenger"
CHAMPION = "champion"


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


def promote(settings: Settings) -> PromotionResult:
    """Register the model of the run named in `registry.run_file` and decide on `champion`."""
    with step_run(settings, "promote", ("registry", "spark")):
        return _promote_in_run(settings)


def _promote_in_run(settings: Settings) -> PromotionResult:
    config = settings.registry
    trained = _read_run_file(config.run_file)
    client = MlflowClient()
    name = config.model_name

    version = mlflow.register_model(trained["model_uri"], name,
                                    tags={"tweetops.train_run_id": trained["run_id"]})
    client.set_registered_model_alias(name, CHALLENGER, version.version)
    champion = _version_by_alias(client, name, CHAMPION)

    spark = build_spark(settings.spark)
    split = trained["split"]
    rows = load_training_rows(spark, Path(split["training_dir"]))
    _, test = split_train_test(rows, seed=split["seed"], test_fraction=split["test_fraction"],
                               partitions=split["split_partitions"])
    test = test.cache()
    challenger_rmse = _rmse_of(f"models:/{name}/{version.version}", test)
    champion_rmse = None
    if champion is None:
        promoted, reason = True, "no champion yet"
    elif str(champion.version) == str(version.version):
        promoted, reason = True, "already champion"
    else:
        champion_rmse = _rmse_of(f"models:/{name}/{champion.version}", test)
        promoted = challenger_rmse < champion_rmse
        verdict = "beats" if promoted else "does not beat"
        reason = (f"challenger rmse {challenger_rmse:.4f} {verdict} champion v{champion.version} "
                  f"rmse {champion_rmse:.4f} on the same {test.count()} test rows")
    test.unpersist()
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, version.version)
    client.set_model_version_tag(name, version.version, "tweetops.promotion", reason)

    result = PromotionResult(
        model_name=name, version=str(version.version), promoted=promoted, reason=reason,
        challenger_rmse=challenger_rmse,
        champion_version=None if champion is None else str(champion.version),
        champion_rmse=champion_rmse)
    mlflow.log_metrics({"challenger_rmse": challenger_rmse, "promoted": float(promoted),
                        **({"champion_rmse": champion_rmse} if champion_rmse is not None else {})})
    mlflow.set_tags({"tweetops.model_version": result.version,
                     "tweetops.promotion": reason})
    write_report(config.promotion_file, asdict(result))
    print(f"promote: {name} v{result.version} is {CHALLENGER}; "
          f"{'now ' + CHAMPION if promoted else CHAMPION + ' unchanged'} ({reason})", flush=True)
    return result


def _read_run_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise TweetopsError(f"{path} was not found: run `tweetops train` first, or set "
                            f"registry.run_file to the file a training run wrote.")
    return read_report(path)


def _version_by_alias(client: MlflowClient, name: str, alias: str) -> Any | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def _rmse_of(model_uri: str, test: Any) -> float:
    model = mlflow.spark.load_model(model_uri)
    return evaluate(model.transform(test))["rmse"]
