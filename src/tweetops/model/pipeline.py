"""The model: its Spark ML pipeline, how it is scored, and what it needs to be fit.

Train fits it, tune searches its hyperparameters, promote and predict score it. Importing this
module has no side effects.
"""

from __future__ import annotations

from typing import Literal

import pandas as pd
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.evaluation import RegressionEvaluator
from pyspark.ml.feature import StringIndexer, VectorAssembler
from pyspark.ml.regression import RandomForestRegressionModel, RandomForestRegressor
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from tweetops.model import PREDICTION_COLUMN
from tweetops.schema import CATEGORICAL_FEATURES, LABEL_COLUMN, NUMERIC_FEATURES
from tweetops.settings import TrainSettings

MIN_TRAINING_ROWS = 50
METRIC_NAMES: tuple[Literal["rmse", "mae", "r2"], ...] = ("rmse", "mae", "r2")
INDEXED_SUFFIX = "_index"


def build_pipeline(config: TrainSettings) -> Pipeline:
    """The unfitted pipeline: StringIndexer (unseen values kept) -> VectorAssembler -> forest."""
    indexed = [f"{name}{INDEXED_SUFFIX}" for name in CATEGORICAL_FEATURES]
    return Pipeline(
        stages=[
            StringIndexer(
                inputCols=list(CATEGORICAL_FEATURES), outputCols=indexed, handleInvalid="keep"
            ),
            VectorAssembler(
                inputCols=[*indexed, *NUMERIC_FEATURES], outputCol="features", handleInvalid="error"
            ),
            RandomForestRegressor(
                featuresCol="features",
                labelCol=LABEL_COLUMN,
                seed=config.seed,
                numTrees=config.num_trees,
                maxDepth=config.max_depth,
                maxBins=config.max_bins,
                minInstancesPerNode=config.min_instances_per_node,
                subsamplingRate=config.subsampling_rate,
                featureSubsetStrategy=config.feature_subset_strategy,
            ),
        ]
    )


def evaluate(
    predictions: DataFrame, prediction_column: str = PREDICTION_COLUMN
) -> dict[str, float]:
    """rmse, mae and r2 of `prediction_column` against the label."""
    evaluator = RegressionEvaluator(labelCol=LABEL_COLUMN, predictionCol=prediction_column)
    return {
        name: float(evaluator.setMetricName(name).evaluate(predictions)) for name in METRIC_NAMES
    }


def baseline_metrics(train: DataFrame, test: DataFrame) -> dict[str, float]:
    """Metrics of predicting the training mean for every test row."""
    mean = train.agg(F.avg(LABEL_COLUMN)).collect()[0][0]
    return evaluate(
        test.withColumn("baseline_prediction", F.lit(float(mean))), "baseline_prediction"
    )


def feature_importances(model: PipelineModel) -> pd.DataFrame:
    """Importance per assembled input column, largest first."""
    assembler = next(stage for stage in model.stages if isinstance(stage, VectorAssembler))
    forest = model.stages[-1]
    assert isinstance(forest, RandomForestRegressionModel)
    names = assembler.getInputCols()
    values = forest.featureImportances.toArray()
    table = pd.DataFrame({"feature": names, "importance": values[: len(names)]})
    return table.sort_values("importance", ascending=False, ignore_index=True)
