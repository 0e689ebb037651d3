"""Predict: batch-score tweets with a model from the registry (by default the champion).

:func:`score` is the core (a loaded model and rows in, scored rows written out);
:func:`predict` is the step that loads the model and runs it in its MLflow run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mlflow
import mlflow.spark
from mlflow.exceptions import MlflowException
from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from tweetops.dataset import KEY_COLUMN
from tweetops.errors import TweetopsError
from tweetops.model import PREDICTION_COLUMN, evaluate
from tweetops.runner import StepRun, run_step
from tweetops.schema import LABEL_COLUMN, MODEL_INPUT_COLUMNS
from tweetops.settings import Settings
from tweetops.spark import spark_path


@dataclass(frozen=True)
class PredictResult:
    """How many rows were scored, and the rmse when the input carried labels."""

    rows: int
    output_path: str
    rmse: float | None
    model_uri: str = ""

    def logged_metrics(self) -> dict[str, float]:
        """Rows scored, and the rmse when there were labels."""
        return {"predict_rows": float(self.rows),
                **({"predict_rmse": self.rmse} if self.rmse is not None else {})}

    def summary(self) -> str:
        """One line: rows, model and where the scores went."""
        rmse = f" (rmse {self.rmse:.4f})" if self.rmse is not None else ""
        return (f"predict: {self.rows} rows scored with {self.model_uri} -> "
                f"{self.output_path}{rmse}")


def score(model: PipelineModel, rows: DataFrame, output_path: Path) -> tuple[int, float | None]:
    """Score `rows` (the model's input columns, plus key and label when present) into Parquet.

    Returns the number of rows scored and the rmse when the rows carried labels.
    """
    missing = [name for name in MODEL_INPUT_COLUMNS if name not in rows.columns]
    if missing:
        raise TweetopsError(f"The input lacks the model's input columns {missing}.")
    keep = [name for name in (KEY_COLUMN, LABEL_COLUMN) if name in rows.columns]
    scored = model.transform(rows.select(*keep, *MODEL_INPUT_COLUMNS)).cache()
    try:
        (scored.select(*keep, F.col(PREDICTION_COLUMN))
         .write.mode("overwrite").parquet(spark_path(output_path)))
        count = scored.count()
        rmse = evaluate(scored)["rmse"] if LABEL_COLUMN in rows.columns else None
    finally:
        scored.unpersist()
    return count, rmse


def predict(settings: Settings) -> PredictResult:
    """Score `predict.input_path` (Parquet with the model's input columns) into `output_path`."""
    config = settings.predict

    def core(run: StepRun) -> PredictResult:
        assert run.spark is not None
        try:
            model = mlflow.spark.load_model(config.model_uri)
        except MlflowException as exc:
            raise TweetopsError(f"Model {config.model_uri} could not be loaded ({exc.message}); "
                                f"run `tweetops promote` or set predict.model_uri.") from exc
        if not config.input_path.exists():
            raise TweetopsError(f"{config.input_path} does not exist: run `tweetops features` "
                                f"or set predict.input_path.")
        rows = run.spark.read.parquet(spark_path(config.input_path))
        count, rmse = score(model, rows, config.output_path)
        return PredictResult(rows=count, output_path=str(config.output_path), rmse=rmse,
                             model_uri=config.model_uri)

    return run_step(settings, "predict", ("predict", "spark"), core, needs_spark=True)
