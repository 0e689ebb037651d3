"""Train: fit the Spark ML pipeline on the training split and score it on the test split.

:func:`fit_and_score` is the core: training rows in, fitted model and scores out, nothing
logged. :func:`train` is the step: it runs the core in the step's MLflow run and publishes the
result there (every setting, test-split metrics for the model and for a mean-predictor baseline,
feature importances as CSV and PNG, the training data as an MLflow dataset input with its DVC
hash, and the model twice: as an MLflow Spark model and as the JVM-free pyfunc that is
registered and served, see :mod:`tweetops.model.pyfunc`), then writes
`reports/metrics.json` and the :class:`~tweetops.contracts.TrainedModel` promote reads.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import mlflow
import mlflow.spark
import pandas as pd
import pyspark
from mlflow.data.spark_dataset import from_spark
from mlflow.models import infer_signature
from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType

from tweetops.contracts import SplitSpec, TrainedModel, TuneOutcome, read_contract, write_contract
from tweetops.dataset import load_training_rows, persist_rows, split_train_test
from tweetops.errors import TweetopsError
from tweetops.model import PREDICTION_COLUMN
from tweetops.model.arrays import export_pipeline
from tweetops.model.pipeline import (
    MIN_TRAINING_ROWS,
    baseline_metrics,
    build_pipeline,
    evaluate,
    feature_importances,
)
from tweetops.model.pyfunc import column_kind, log_serving_model
from tweetops.runner import SparkStepRun, run_step
from tweetops.schema import INPUT_RANGES, LABEL_COLUMN, MODEL_INPUT_COLUMNS
from tweetops.settings import Settings, TrainSettings
from tweetops.spark import spark_path
from tweetops.tracking import data_label

MODEL_ARTIFACT_PATH = "model"  # the JVM-free pyfunc: registered and served
SPARK_MODEL_ARTIFACT_PATH = "spark-model"  # the same pipeline as an MLflow Spark model
TRAIN_SECTIONS = ("train", "spark", "mlflow")
MAX_PLOTTED_ROWS = 5000  # test rows in the predicted-vs-actual plot table
# what `dvc exp show` and `dvc metrics diff` compare, in this order (every metric is in the run
# and in train's report for promote)
METRICS_FILE_KEYS = ("rmse", "r2", "mae", "baseline_rmse")


@dataclass(frozen=True)
class FittedModel:
    """The core's output: the fitted pipeline, its scores, and what describes it."""

    model: PipelineModel
    metrics: dict[str, float]
    importances: pd.DataFrame
    example: pd.DataFrame
    train_rows: int
    test_rows: int
    predictions: pd.DataFrame  # actual and predicted label of (up to 5000) test rows


@dataclass(frozen=True)
class TrainResult:
    """Where the model went and how it scored on the test split."""

    run_id: str
    model_uri: str
    metrics: dict[str, float]
    train_rows: int
    test_rows: int
    spark_model_uri: str = ""

    @classmethod
    def from_contract(cls, trained: TrainedModel) -> TrainResult:
        """The result an earlier train run handed on in `train.run_file` (its split aside)."""
        return cls(
            run_id=trained.run_id,
            model_uri=trained.model_uri,
            metrics=trained.metrics,
            train_rows=trained.train_rows,
            test_rows=trained.test_rows,
            spark_model_uri=trained.spark_model_uri,
        )

    def logged_metrics(self) -> dict[str, float]:
        """Model and baseline metrics, and the split sizes."""
        return self.metrics

    def summary(self) -> str:
        """One line: rmse against the baseline, r2, and the run."""
        metrics = self.metrics
        return (
            f"train: rmse {metrics['rmse']:.4f} (baseline {metrics['baseline_rmse']:.4f}), "
            f"r2 {metrics['r2']:.4f} on {self.test_rows} test rows; run {self.run_id}"
        )


def fit_and_score(rows: DataFrame, config: TrainSettings) -> FittedModel:
    """Split `rows`, fit the pipeline on the training split, score it and the baseline."""
    train_split, test_split = split_train_test(
        rows,
        seed=config.seed,
        test_fraction=config.test_fraction,
        partitions=config.split_partitions,
    )
    # both splits are read several times (fit, metrics, baseline, example): persist them once
    # at train.storage_level (`none`: recompute them each time)
    train_split = persist_rows(train_split, config.storage_level)
    test_split = persist_rows(test_split, config.storage_level)
    try:
        train_rows, test_rows = train_split.count(), test_split.count()
        if train_rows < MIN_TRAINING_ROWS or test_rows == 0:
            raise TweetopsError(
                f"Only {train_rows} training and {test_rows} test rows in "
                f"{config.training_rows_dir}: ingest more tweets (ingest.n_tweets) or lower "
                f"train.test_fraction."
            )
        model = build_pipeline(config).fit(train_split)
        metrics = evaluate(model.transform(test_split))
        baseline = baseline_metrics(train_split, test_split)
        example: pd.DataFrame = test_split.select(*MODEL_INPUT_COLUMNS).limit(5).toPandas()
        plotted: pd.DataFrame = (
            model.transform(test_split)
            .orderBy("tweet_id")
            .limit(MAX_PLOTTED_ROWS)
            .select(LABEL_COLUMN, PREDICTION_COLUMN)
            .toPandas()
        )
        predictions = plotted.rename(
            columns={LABEL_COLUMN: "actual", PREDICTION_COLUMN: "predicted"}
        )
    finally:
        train_split.unpersist()
        test_split.unpersist()
    all_metrics = {
        **metrics,
        **{f"baseline_{name}": value for name, value in baseline.items()},
        "train_rows": float(train_rows),
        "test_rows": float(test_rows),
    }
    return FittedModel(
        model=model,
        metrics=all_metrics,
        importances=feature_importances(model),
        example=example,
        train_rows=train_rows,
        test_rows=test_rows,
        predictions=predictions,
    )


def train(settings: Settings, tuned: TuneOutcome | None = None) -> TrainResult:
    """Fit and score the model in the step's MLflow run; publish it and write the reports.

    With `tuned` (what `main` hands over in memory) or else `train.tuned_from` set (the tune
    result file `tweetops tune` wrote), the hyperparameters are the tuned ones and the run
    records which tune run found them.
    """
    if tuned is None and settings.train.tuned_from is not None:
        tuned = read_contract(settings.train.tuned_from, TuneOutcome, written_by="tune")
    if tuned is not None:
        settings = settings.model_copy(
            update={
                "train": TrainSettings.model_validate(
                    {**settings.train.model_dump(), **tuned.best_params}
                )
            }
        )
    config = settings.train

    def core(run: SparkStepRun) -> tuple[FittedModel, DataFrame]:
        rows = load_training_rows(run.spark, config.training_rows_dir)
        return fit_and_score(rows, config), rows

    def publish(outcome: tuple[FittedModel, DataFrame], run: SparkStepRun) -> TrainResult:
        fitted, rows = outcome
        with _integer_hint_silenced():
            mlflow.log_input(
                from_spark(rows, path=spark_path(config.training_rows_dir), name="training_rows"),
                context="training",
            )
        _log_feature_importances(fitted.importances)
        _log_predictions_plot(fitted.predictions)
        _write_plot_tables(fitted, config)
        if tuned is not None:
            mlflow.set_tags(
                {
                    "tweetops.tuned_from.run_id": tuned.run_id,
                    "tweetops.tuned_from.best_trial_run_id": tuned.best_trial_run_id,
                }
            )
        model_uri, spark_model_uri = _log_model(run.spark, fitted, rows.schema)
        return TrainResult(
            run_id=run.run_id,
            model_uri=model_uri,
            metrics=fitted.metrics,
            train_rows=fitted.train_rows,
            test_rows=fitted.test_rows,
            spark_model_uri=spark_model_uri,
        )

    def reports(result: TrainResult) -> dict[Path, dict[str, Any]]:
        return {config.metrics_file: {name: result.metrics[name] for name in METRICS_FILE_KEYS}}

    name = (
        f"train nt{config.num_trees}-d{config.max_depth} {data_label(config.training_rows_dir)}"
        + (" tuned" if tuned is not None else "")
    )
    result = run_step(
        settings,
        "train",
        TRAIN_SECTIONS,
        core,
        needs_spark=True,
        inputs={"training": config.training_rows_dir},
        publish=publish,
        reports=reports,
        run_name=name,
    )
    write_contract(
        config.run_file,
        TrainedModel(
            **asdict(result),
            split=SplitSpec(
                seed=config.seed,
                test_fraction=config.test_fraction,
                split_partitions=config.split_partitions,
                training_rows_dir=str(config.training_rows_dir),
            ),
        ),
    )
    return result


def _log_model(spark: SparkSession, fitted: FittedModel, schema: StructType) -> tuple[str, str]:
    """Log the Spark pipeline (`spark-model`) and its JVM-free pyfunc (`model`, the served one).

    Both come from the one fitted pipeline in memory: the pyfunc is exported from its stages,
    not read back from the logged Spark model. Returns the pyfunc's and the Spark model's URIs.
    """
    with _integer_hint_silenced():
        predictions = fitted.model.transform(spark.createDataFrame(fitted.example))
        predicted: pd.DataFrame = predictions.select(PREDICTION_COLUMN).toPandas()
        signature = infer_signature(fitted.example, predicted[PREDICTION_COLUMN])
        spark_info = mlflow.spark.log_model(
            fitted.model,
            artifact_path=SPARK_MODEL_ARTIFACT_PATH,
            signature=signature,
            input_example=fitted.example,
            # given, not inferred: inferring loads the model in a subprocess (slow, and it
            # warns and falls back to exactly this on a Spark model)
            pip_requirements=[f"pyspark=={pyspark.__version__}"],
        )
    exported = export_pipeline(fitted.model)
    kinds = {
        name: column_kind(schema[name].dataType.simpleString()) for name in MODEL_INPUT_COLUMNS
    }
    info = log_serving_model(
        exported, kinds, fitted.example, ranges=INPUT_RANGES, name=MODEL_ARTIFACT_PATH
    )
    return info.model_uri, spark_info.model_uri


def _write_plot_tables(fitted: FittedModel, config: TrainSettings) -> None:
    """The CSVs `dvc plots` draws: predicted vs actual on test rows, feature importances."""
    for path, table in (
        (config.predictions_plot_file, fitted.predictions),
        (config.importance_plot_file, fitted.importances),
    ):
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.tmp")
        table.to_csv(partial, index=False, float_format="%.6g")
        partial.replace(path)


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


def _log_predictions_plot(table: pd.DataFrame) -> None:
    """Predicted vs actual engagement of the test rows, with the y = x line, as a PNG.

    The same picture as `dvc plots show` draws from `reports/plots/predictions.csv`.
    """
    import matplotlib

    matplotlib.use("Agg")  # headless: set here, when a figure is drawn, never at import
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5.5, 5.5))
    axis.scatter(table["actual"], table["predicted"], s=6, alpha=0.4, color="#1d9bf0")
    low = float(min(table["actual"].min(), table["predicted"].min()))
    high = float(max(table["actual"].max(), table["predicted"].max()))
    axis.plot([low, high], [low, high], "--", color="#555555", label="y = x (perfect)")
    axis.set_xlabel("actual engagement, log1p")
    axis.set_ylabel("predicted engagement, log1p")
    axis.set_title(f"Predicted vs actual ({len(table)} test rows)")
    axis.legend(loc="upper left")
    figure.tight_layout()
    with tempfile.TemporaryDirectory() as scratch:
        png_path = Path(scratch) / "predicted-vs-actual.png"
        figure.savefig(png_path, dpi=110)
        plt.close(figure)
        mlflow.log_artifact(str(png_path))
