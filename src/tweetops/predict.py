"""Predict: batch-score tweets with a registered model (by default the champion) in Spark.

The model is the registered pyfunc `mlflow models serve` serves, run by Spark through
`mlflow.pyfunc.spark_udf`, so batch and online scores come from one model and one set of input
rules. An alias (`models:/tweet-engagement@champion`) is resolved to its version once, before
scoring, and every output row carries the model name, version and alias it was scored with.

:func:`score` is the core (a loaded model and rows in, scored rows written out; it never reads
the registry); :func:`predict` is the step: it resolves the model and downloads it
(:func:`load_model`) before its MLflow run opens, so a wrong model URI leaves no run behind, then
runs the core in that run.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from tweetops.dataset import KEY_COLUMN, require_training_rows
from tweetops.errors import TweetopsError
from tweetops.model import PREDICTION_COLUMN
from tweetops.runner import SparkStepRun, run_step
from tweetops.schema import LABEL_COLUMN
from tweetops.settings import Settings
from tweetops.spark import spark_path

MODEL_COLUMNS = ("model_name", "model_version", "model_alias")
_REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


@dataclass(frozen=True)
class ResolvedModel:
    """A registered model pinned to one version: what scored the rows."""

    name: str
    version: str
    alias: str | None
    input_columns: tuple[str, ...]

    @property
    def uri(self) -> str:
        """The version's URI (never an alias: it cannot move while scoring)."""
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class LoadedModel:
    """A resolved model and the local folder its pyfunc was downloaded to."""

    resolved: ResolvedModel
    path: Path


@dataclass(frozen=True)
class PredictResult:
    """How many rows were scored, and the rmse when the input carried labels."""

    rows: int
    output_path: str
    rmse: float | None
    model_uri: str = ""
    model_version: str = ""

    def logged_metrics(self) -> dict[str, float]:
        """Rows scored, and the rmse when there were labels."""
        return {
            "predict_rows": float(self.rows),
            **({"predict_rmse": self.rmse} if self.rmse is not None else {}),
        }

    def summary(self) -> str:
        """One line: rows, model and where the scores went."""
        rmse = f" (rmse {self.rmse:.4f})" if self.rmse is not None else ""
        return (
            f"predict: {self.rows} rows scored with {self.model_uri} (v{self.model_version})"
            f" -> {self.output_path}{rmse}"
        )


def resolve_model(model_uri: str) -> ResolvedModel:
    """Pin `models:/<name>@<alias>` or `models:/<name>/<version>` to a version and its inputs."""
    match = _REGISTRY_URI.match(model_uri)
    if match is None:
        raise TweetopsError(
            f"predict.model_uri={model_uri!r} is not a registered model URI: use "
            f"models:/<name>@<alias> or models:/<name>/<version>."
        )
    name, alias = match["name"], match["alias"]
    try:
        client = MlflowClient()
        version = (
            str(client.get_model_version_by_alias(name, alias).version)
            if alias
            else str(client.get_model_version(name, match["version"]).version)
        )
        info = mlflow.models.get_model_info(f"models:/{name}/{version}")
    except MlflowException as exc:
        raise TweetopsError(
            f"Model {model_uri} could not be resolved ({exc.message}); run "
            f"`tweetops promote` or set predict.model_uri."
        ) from None
    kinds = (info.metadata or {}).get("input_kinds")
    columns = tuple(kinds) if kinds else tuple(info.signature.inputs.input_names())
    return ResolvedModel(name=name, version=version, alias=alias, input_columns=columns)


def load_model(model: ResolvedModel, folder: Path) -> LoadedModel:
    """Download the pinned version of `model` from the registry into `folder`."""
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=model.uri, dst_path=str(folder))
    except MlflowException as exc:
        raise TweetopsError(
            f"Model {model.uri} could not be downloaded ({exc.message}); check the registry "
            f"or set predict.model_uri."
        ) from None
    return LoadedModel(resolved=model, path=Path(local))


def read_rows(spark: SparkSession, path: Path) -> DataFrame:
    """Rows to score: a Parquet folder or file, or JSONL (`.jsonl`/`.json`, one row per line)."""
    if not path.exists():
        raise TweetopsError(
            f"{path} does not exist: run `tweetops features` or set predict.input_path."
        )
    if path.suffix in (".jsonl", ".json") or (path.is_dir() and any(path.glob("*.jsonl"))):
        return spark.read.json(spark_path(path))
    return spark.read.parquet(spark_path(path))


def score(
    spark: SparkSession, loaded: LoadedModel, rows: DataFrame, output_path: Path
) -> tuple[int, float | None]:
    """Score `rows` with the `loaded` model through `spark_udf`; write Parquet to `output_path`.

    The output has the key and label when the input has them, the prediction, and the model's
    name, version and alias. Returns the number of rows scored and the rmse when labelled.
    """
    model = loaded.resolved
    missing = [name for name in model.input_columns if name not in rows.columns]
    if missing:
        raise TweetopsError(f"The input lacks the model's input columns {missing}.")
    udf = mlflow.pyfunc.spark_udf(
        spark, str(loaded.path), result_type="double", env_manager="local"
    )
    keep = [name for name in (KEY_COLUMN, LABEL_COLUMN) if name in rows.columns]
    scored = rows.select(
        *keep,
        udf(F.struct(*model.input_columns)).alias(PREDICTION_COLUMN),
        F.lit(model.name).alias(MODEL_COLUMNS[0]),
        F.lit(model.version).alias(MODEL_COLUMNS[1]),
        F.lit(model.alias).cast("string").alias(MODEL_COLUMNS[2]),
    )
    try:
        scored.write.mode("overwrite").parquet(spark_path(output_path))
    except (Py4JJavaError, PySparkException) as exc:
        raise TweetopsError(f"Scoring with {model.uri} failed: {_refusal(str(exc))}.") from None
    written = spark.read.parquet(spark_path(output_path))
    count = written.count()
    rmse = None
    if LABEL_COLUMN in rows.columns:
        squared = (F.col(PREDICTION_COLUMN) - F.col(LABEL_COLUMN)) ** 2
        rmse = float(written.agg(F.sqrt(F.avg(squared))).collect()[0][0])
    return count, rmse


def _refusal(message: str) -> str:
    """The model's own one-sentence refusal out of a Spark error, else its first line."""
    found = re.search(r"row \d+: column [^\n]*", message)
    return found.group(0).rstrip(". ") if found else message.strip().splitlines()[0][:300]


def predict(settings: Settings) -> PredictResult:
    """Score `predict.input_path` (Parquet or JSONL) into `predict.output_path`."""
    config = settings.predict

    with tempfile.TemporaryDirectory() as scratch:
        loaded = load_model(resolve_model(config.model_uri), Path(scratch))

        def core(run: SparkStepRun) -> PredictResult:
            if config.input_path.resolve() == settings.data.training_rows.resolve():
                # the features table: what a killed or failed features run left is refused
                require_training_rows(config.input_path)
            rows = read_rows(run.spark, config.input_path)
            count, rmse = score(run.spark, loaded, rows, config.output_path)
            return PredictResult(
                rows=count,
                output_path=str(config.output_path),
                rmse=rmse,
                model_uri=config.model_uri,
                model_version=loaded.resolved.version,
            )

        return run_step(settings, "predict", ("predict", "spark"), core, needs_spark=True)
