"""Train: a Spark ML pipeline (StringIndexer -> VectorAssembler -> RandomForestRegressor).

Logs into the active MLflow run: every setting, test-split metrics for the model and for a
mean-predictor baseline, the feature importances (CSV and PNG), the training data as an MLflow
dataset input with its DVC hash, the Spark configuration, and the model itself with a signature
and an input example on the raw columns (what `mlflow models serve` receives).
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import mlflow
import mlflow.data
import mlflow.spark
import pandas as pd
from mlflow.models import infer_signature
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.evaluation import RegressionEvaluator
from pyspark.ml.feature import StringIndexer, VectorAssembler
from pyspark.ml.regression import RandomForestRegressor
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from tweetops.dataset import load_training_rows, split_train_test
from tweetops.errors import TweetopsError
from tweetops.reports import write_report
from tweetops.schema import (
    CATEGORICAL_FEATURES,
    LABEL_COLUMN,
    MODEL_INPUT_COLUMNS,
    NUMERIC_FEATURES,
)
from tweetops.settings import Settings, TrainSettings
from tweetops.spark import build_spark, spark_conf_for_tracking, spark_path
from tweetops.tracking import log_data_lineage, log_spark_conf, step_run

MODEL_ARTIFACT_PATH = "model"
MIN_TRAINING_ROWS = 50
METRIC_NAMES = ("rmse", "mae", "r2")
TRAIN_SECTIONS = ("train", "spark", "mlflow")


@dataclass(frozen=True)
class TrainResult:
    """Where the model went and how it scored on the test split."""

    run_id: str
    model_uri: str
    metrics: dict[str, float]
    train_rows: int
    test_rows: int


def build_pipeline(config: TrainSettings) -> Pipeline:
    """The unfitted pipeline; categorical columns are indexed, unseen values kept."""
    indexed = [f"{name}_index" for name in CATEGORICAL_FEATURES]
    return Pipeline(stages=[
        StringIndexer(inputCols=list(CATEGORICAL_FEATURES), outputCols=indexed,
                      handleInvalid="keep"),
        VectorAssembler(inputCols=[*indexed, *NUMERIC_FEATURES], outputCol="features",
                        handleInvalid="error"),
        RandomForestRegressor(
            featuresCol="features", labelCol=LABEL_COLUMN, seed=config.seed,
            numTrees=config.num_trees, maxDepth=config.max_depth, maxBins=config.max_bins,
            minInstancesPerNode=config.min_instances_per_node,
            subsamplingRate=config.subsampling_rate,
            featureSubsetStrategy=config.feature_subset_strategy,
        ),
    ])


def evaluate(predictions: DataFrame, prediction_column: str = "prediction") -> dict[str, float]:
    """rmse, mae and r2 of `prediction_column` against the label."""
    evaluator = RegressionEvaluator(labelCol=LABEL_COLUMN, predictionCol=prediction_column)
    return {name: float(evaluator.setMetricName(name).evaluate(predictions))
            for name in METRIC_NAMES}


def baseline_metrics(train: DataFrame, test: DataFrame) -> dict[str, float]:
    """Metrics of predicting the training mean for every test row."""
    mean = train.agg(F.avg(LABEL_COLUMN)).first()[0]
    return evaluate(test.withColumn("baseline_prediction", F.lit(float(mean))),
                    "baseline_prediction")


def feature_importances(model: PipelineModel) -> pd.DataFrame:
    """Importance per assembled input column, largest first."""
    assembler = next(stage for stage in model.stages if isinstance(stage, VectorAssembler))
    forest = model.stages[-1]
    names = assembler.getInputCols()
    values = forest.featureImportances.toArray()
    table = pd.DataFrame({"feature": names, "importance": values[: len(names)]})
    return table.sort_values("importance", ascending=False, ignore_index=True)


def train(settings: Settings) -> TrainResult:
    """Fit the pipeline on the training split; log it all to the step's MLflow run."""
    with step_run(settings, "train", TRAIN_SECTIONS) as run_id:
        return _train_in_run(settings, run_id)


def _train_in_run(settings: Settings, run_id: str) -> TrainResult:
    config = settings.train
    spark = build_spark(settings.spark)
    rows = load_training_rows(spark, config.training_dir)
    train_split, test_split = split_train_test(
        rows, seed=config.seed, test_fraction=config.test_fraction,
        partitions=config.split_partitions)
    # both splits are read several times (fit, metrics, baseline, example): cache them once
    train_split, test_split = train_split.cache(), test_split.cache()
    train_rows, test_rows = train_split.count(), test_split.count()
    if train_rows < MIN_TRAINING_ROWS or test_rows == 0:
        raise TweetopsError(
            f"Only {train_rows} training and {test_rows} test rows in {config.training_dir}: "
            f"ingest more tweets (ingest.n_tweets) or lower train.test_fraction.")

    log_data_lineage("training", config.training_dir)
    with _integer_hint_silenced():
        mlflow.log_input(mlflow.data.from_spark(rows, path=spark_path(config.training_dir),
                                                name="training_rows"), context="training")
    log_spark_conf(spark_conf_for_tracking(spark))

    model = build_pipeline(config).fit(train_split)
    metrics = evaluate(model.transform(test_split))
    baseline = baseline_metrics(train_split, test_split)
    all_metrics = {**metrics, **{f"baseline_{name}": value for name, value in baseline.items()},
                   "train_rows": float(train_rows), "test_rows": float(test_rows)}
    mlflow.log_metrics(all_metrics)
    _log_feature_importances(feature_importances(model))

    example = test_split.select(*MODEL_INPUT_COLUMNS).limit(5).toPandas()
    with _integer_hint_silenced():
        signature = infer_signature(example, model.transform(
            spark.createDataFrame(example)).select("prediction").toPandas()["prediction"])
        info = mlflow.spark.log_model(model, artifact_path=MODEL_ARTIFACT_PATH,
                                      signature=signature, input_example=example)
    train_split.unpersist()
    test_split.unpersist()

    result = TrainResult(run_id=run_id, model_uri=info.model_uri, metrics=all_metrics,
                         train_rows=train_rows, test_rows=test_rows)
    write_report(config.metrics_file, {name: all_metrics[name] for name in sorted(all_metrics)})
    write_report(config.run_file, {**asdict(result), "split": {
        "seed": config.seed, "test_fraction": config.test_fraction,
        "split_partitions": config.split_partitions,
        "training_dir": str(config.training_dir)}})
    print(f"train: rmse {metrics['rmse']:.4f} (baseline {baseline['rmse']:.4f}), "
          f"r2 {metrics['r2']:.4f} on {test_rows} test rows; run {result.run_id}", flush=True)
    return result


@contextmanager
def _integer_hint_silenced() -> Iterator[None]:
    # the features step never leaves a count null, so MLflow's hint that integer columns cannot
    # hold missing values does not apply to our schemas
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        yield


def _log_feature_importances(table: pd.DataFrame) -> None:
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
