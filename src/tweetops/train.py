"""Train: fit the Spark ML pipeline on the training split and score it on the test split.

:func:`fit_and_score` is the core: training rows in, fitted model and scores out, nothing
logged. :func:`train` is the step: it runs the core in the step's MLflow run and publishes the
result there (every setting, test-split metrics for the model and for a mean-predictor baseline,
feature importances as CSV and PNG, the training data as an MLflow dataset input with its DVC
hash, and the model with a signature and an input example on the raw columns), then writes
`reports/metrics.json` and the :class:`~tweetops.contracts.TrainedModel` promote reads.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import mlflow
import mlflow.data
import mlflow.spark
import pandas as pd
from mlflow.models import infer_signature
from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame, SparkSession

from tweetops.contracts import SplitSpec, TrainedModel, write_contract
from tweetops.dataset import load_training_rows, persist_rows, split_train_test
from tweetops.errors import TweetopsError
from tweetops.model import (
    MIN_TRAINING_ROWS,
    PREDICTION_COLUMN,
    baseline_metrics,
    build_pipeline,
    evaluate,
    feature_importances,
)
from tweetops.runner import StepRun, run_step
from tweetops.schema import MODEL_INPUT_COLUMNS
from tweetops.settings import Settings, TrainSettings
from tweetops.spark import spark_path

MODEL_ARTIFACT_PATH = "model"
TRAIN_SECTIONS = ("train", "spark", "mlflow")


@dataclass(frozen=True)
class FittedModel:
    """The core's output: the fitted pipeline, its scores, and what describes it."""

    model: PipelineModel
    metrics: dict[str, float]
    importances: pd.DataFrame
    example: pd.DataFrame
    train_rows: int
    test_rows: int


@dataclass(frozen=True)
class TrainResult:
    """Where the model went and how it scored on the test split."""

    run_id: str
    model_uri: str
    metrics: dict[str, float]
    train_rows: int
    test_rows: int

    def logged_metrics(self) -> dict[str, float]:
        """Model and baseline metrics, and the split sizes."""
        return self.metrics

    def summary(self) -> str:
        """One line: rmse against the baseline, r2, and the run."""
        metrics = self.metrics
        return (f"train: rmse {metrics['rmse']:.4f} (baseline {metrics['baseline_rmse']:.4f}), "
                f"r2 {metrics['r2']:.4f} on {self.test_rows} test rows; run {self.run_id}")


def fit_and_score(spark: SparkSession, rows: DataFrame, config: TrainSettings) -> FittedModel:
    """Split `rows`, fit the pipeline on the training split, score it and the baseline."""
    train_split, test_split = split_train_test(
        rows, seed=config.seed, test_fraction=config.test_fraction,
        partitions=config.split_partitions)
    # both splits are read several times (fit, metrics, baseline, example): persist them once
    # at train.storage_level (`none`: recompute them each time)
    train_split = persist_rows(train_split, config.storage_level)
    test_split = persist_rows(test_split, config.storage_level)
    try:
        train_rows, test_rows = train_split.count(), test_split.count()
        if train_rows < MIN_TRAINING_ROWS or test_rows == 0:
            raise TweetopsError(
                f"Only {train_rows} training and {test_rows} test rows in "
                f"{config.training_dir}: ingest more tweets (ingest.n_tweets) or lower "
                f"train.test_fraction.")
        model = build_pipeline(config).fit(train_split)
        metrics = evaluate(model.transform(test_split))
        baseline = baseline_metrics(train_split, test_split)
        example = test_split.select(*MODEL_INPUT_COLUMNS).limit(5).toPandas()
    finally:
        train_split.unpersist()
        test_split.unpersist()
    all_metrics = {**metrics, **{f"baseline_{name}": value for name, value in baseline.items()},
                   "train_rows": float(train_rows), "test_rows": float(test_rows)}
    return FittedModel(model=model, metrics=all_metrics, importances=feature_importances(model),
                       example=example, train_rows=train_rows, test_rows=test_rows)


def train(settings: Settings) -> TrainResult:
    """Fit and score the model in the step's MLflow run; publish it and write the reports."""
    config = settings.train

    def core(run: StepRun) -> tuple[FittedModel, DataFrame]:
        assert run.spark is not None
        rows = load_training_rows(run.spark, config.training_dir)
        return fit_and_score(run.spark, rows, config), rows

    def publish(outcome: tuple[FittedModel, DataFrame], run: StepRun) -> TrainResult:
        fitted, rows = outcome
        assert run.spark is not None
        with _integer_hint_silenced():
            mlflow.log_input(mlflow.data.from_spark(rows, path=spark_path(config.training_dir),
                                                    name="training_rows"), context="training")
        _log_feature_importances(fitted.importances)
        model_uri = _log_model(run.spark, fitted)
        return TrainResult(run_id=run.run_id, model_uri=model_uri, metrics=fitted.metrics,
                           train_rows=fitted.train_rows, test_rows=fitted.test_rows)

    def reports(result: TrainResult) -> dict[Path, dict]:
        return {config.metrics_file: dict(sorted(result.metrics.items()))}

    result = run_step(settings, "train", TRAIN_SECTIONS, core, needs_spark=True,
                      inputs={"training": config.training_dir}, publish=publish,
                      reports=reports)
    write_contract(config.run_file, TrainedModel(
        **asdict(result), split=SplitSpec(seed=config.seed, test_fraction=config.test_fraction,
                                          split_partitions=config.split_partitions,
                                          training_dir=str(config.training_dir))))
    return result


def _log_model(spark: SparkSession, fitted: FittedModel) -> str:
    with _integer_hint_silenced():
        predictions = fitted.model.transform(spark.createDataFrame(fitted.example))
        signature = infer_signature(
            fitted.example, predictions.select(PREDICTION_COLUMN).toPandas()[PREDICTION_COLUMN])
        info = mlflow.spark.log_model(fitted.model, artifact_path=MODEL_ARTIFACT_PATH,
                                      signature=signature, input_example=fitted.example)
    return info.model_uri


@contextmanager
def _integer_hint_silenced() -> Iterator[None]:
    # the features step never leaves a count null, so MLflow's hint that integer columns cannot
    # hold missing values does not apply to our schemas
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        yield


def _log_feature_importances(table: pd.DataFrame) -> None:
    import matplotlib

    matplotlib.use("Agg")  # headless: set here, when a figure is drawn, never at import
    import matplotlib.pyplot as plt

    with tempfile.TemporaryDirectory() as scratch:
        csv_path = Path(scratch) / "feature-importance.csv"
        table.to_csv(csv_path, index=False)
        mlflow.log_artifact(str(csv_path))
        figure, axis = plt.subplots(figsize=(7, 0.35 * len(table) + 1.2))
        ordered = table.iloc[::-1]
        axis.barh(ordered["feature"], ordered["importance"], color="#1d9bf0")
        axis.set_xlabel("importance (RandomForest, mean decrease in impurity)")
        axis.set_title("What drives engagement")
        figure.tight_layout()
        png_path = Path(scratch) / "feature-importance.png"
        figure.savefig(png_path, dpi=110)
        plt.close(figure)
        mlflow.log_artifact(str(png_path))
