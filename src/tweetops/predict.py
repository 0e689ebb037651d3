"""Predict: batch-score tweets with a model from the registry (by default the champion)."""

from __future__ import annotations

from dataclasses import dataclass

import mlflow
import mlflow.spark
from mlflow.exceptions import MlflowException
from pyspark.sql import functions as F

from tweetops.dataset import KEY_COLUMN
from tweetops.errors import TweetopsError
from tweetops.schema import LABEL_COLUMN, MODEL_INPUT_COLUMNS
from tweetops.settings import Settings
from tweetops.spark import build_spark, spark_path
from tweetops.tracking import step_run
from tweetops.train import evaluate


@dataclass(frozen=True)
class PredictResult:
    """How many rows were scored, and the rmse when the input carried labels."""

    rows: int
    output_path: str
    rmse: float | None


def predict(settings: Settings) -> PredictResult:
    """Score `predict.input_path` (Parquet with the model's input columns) into `output_path`."""
    with step_run(settings, "predict", ("predict", "spark")):
        config = settings.predict
        spark = build_spark(settings.spark)
        try:
            model = mlflow.spark.load_model(config.model_uri)
        except MlflowException as exc:
            raise TweetopsError(f"Model {config.model_uri} could not be loaded ({exc.message}); "
                                f"run `tweetops promote` or set predict.model_uri.") from exc
        if not config.input_path.exists():
            raise TweetopsError(f"{config.input_path} does not exist: run `tweetops features` "
                                f"or set predict.input_path.")
        rows = spark.read.parquet(spark_path(config.input_path))
        missing = [name for name in MODEL_INPUT_COLUMNS if name not in rows.columns]
        if missing:
            raise TweetopsError(f"{config.input_path} lacks the model's input columns {missing}.")
        keep = [name for name in (KEY_COLUMN, LABEL_COLUMN) if name in rows.columns]
        scored = model.transform(rows.select(*keep, *MODEL_INPUT_COLUMNS)).cache()
        (scored.select(*keep, F.col("prediction"))
         .write.mode("overwrite").parquet(spark_path(config.output_path)))
        count = scored.count()
        rmse = evaluate(scored)["rmse"] if LABEL_COLUMN in rows.columns else None
        scored.unpersist()
        mlflow.log_metrics({"predict_rows": count, **({"predict_rmse": rmse} if rmse else {})})
        print(f"predict: {count} rows scored with {config.model_uri} -> {config.output_path}"
              + (f" (rmse {rmse:.4f})" if rmse is not None else ""), flush=True)
        return PredictResult(rows=count, output_path=str(config.output_path), rmse=rmse)
