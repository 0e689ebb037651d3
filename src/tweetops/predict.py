"""Predict: batch-score tweets with a registered model (by default the champion) in Spark.

The model is the registered pyfunc `mlflow models serve` serves, run by Spark through
`mlflow.pyfunc.spark_udf`, so batch and online scores come from one model and one set of input
rules. An alias (`models:/tweet-engagement@champion`) is resolved to its version once, before
scoring, and every output row carries the model name, version and alias it was scored with.

:func:`score` is the core (a loaded model and rows in, scored rows written out; it never reads
the registry); :func:`predict` is the step: it resolves the model and downloads it
(:func:`load_model`) before its MLflow run opens, so a wrong model URI leaves no run behind, then
runs the core in that run.

Inputs are checked against the model's own input kinds and ranges (stored with it) before Spark
runs the model, so a wrong column type, a null or a value out of range is one sentence naming the
column (and the tweet), not a failed Spark job. A score is printed only on rows the model never
trained on: when the rows carry `tweet_id` and the label, the rmse is on those that are test rows
of the model's training split; otherwise the summary says plainly that it may include training
rows.
"""

from __future__ import annotations

import operator
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BooleanType,
    ByteType,
    DataType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    ShortType,
    StringType,
)

from tweetops.dataset import KEY_COLUMN, is_test_row, require_training_rows
from tweetops.errors import TweetopsError
from tweetops.model import PREDICTION_COLUMN
from tweetops.promote import split_of
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
    kinds: Mapping[str, str] = field(default_factory=dict)
    ranges: Mapping[str, Sequence[float | None]] = field(default_factory=dict)
    # the split its training run used (seed, test_fraction); None when unknown
    split: Mapping[str, float | int] | None = None

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
    """How many rows were scored, and the rmse when the input carried labels.

    `rmse` is on the `rmse_rows` rows it was measured on: the test rows of the model's training
    split when `held_out`, else every labelled row (which may include rows the model trained on).
    """

    rows: int
    output_path: str
    rmse: float | None
    model_uri: str = ""
    model_version: str = ""
    rmse_rows: int = 0
    held_out: bool = False

    def logged_metrics(self) -> dict[str, float]:
        """Rows scored, and the rmse when there were labels (named for the rows it is on)."""
        name = "predict_test_rmse" if self.held_out else "predict_rmse_all_rows"
        return {
            "predict_rows": float(self.rows),
            **({name: self.rmse, "predict_rmse_rows": float(self.rmse_rows)} if self.rmse else {}),
        }

    def summary(self) -> str:
        """One line: rows, model, where the scores went, and what the rmse is on."""
        if self.rmse is None:
            rmse = ""
        elif self.held_out:
            rmse = f" (rmse {self.rmse:.4f} on the {self.rmse_rows} rows it never trained on)"
        else:
            rmse = (
                f" (rmse {self.rmse:.4f} on all {self.rmse_rows} labelled rows, which may include"
                f" rows it trained on: not a test score)"
            )
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
    metadata = info.metadata or {}
    kinds = metadata.get("input_kinds") or {}
    columns = tuple(kinds) if kinds else tuple(info.signature.inputs.input_names())
    split = split_of(client, name, version)
    return ResolvedModel(
        name=name,
        version=version,
        alias=alias,
        input_columns=columns,
        kinds=kinds,
        ranges=metadata.get("input_ranges") or {},
        split=split,
    )


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


def read_rows(spark: SparkSession, path: Path | str) -> DataFrame:
    """Rows to score: a Parquet folder or file, or JSONL (`.jsonl`/`.json`, one row per line).

    A URI (`s3a://`, `hdfs://`) is read by Spark as it is: JSONL when it ends in `.jsonl` or
    `.json`, else Parquet.
    """
    if isinstance(path, str):
        if path.rstrip("/").endswith((".jsonl", ".json")):
            return spark.read.json(path)
        return spark.read.parquet(path)
    if not path.exists():
        raise TweetopsError(
            f"{path} does not exist: run `tweetops features` or set predict.input_path."
        )
    try:
        if path.suffix in (".jsonl", ".json") or (path.is_dir() and any(path.glob("*.jsonl"))):
            return spark.read.json(spark_path(path))
        return spark.read.parquet(spark_path(path))
    except (Py4JJavaError, PySparkException) as exc:
        raise TweetopsError(
            f"{path} cannot be read as Parquet or JSONL ({_first_line(exc)}): set "
            f"predict.input_path to a Parquet folder or file or a .jsonl file."
        ) from None


# pandas writes datetimes as Parquet TIMESTAMP(NANOS), which Spark refuses unless told to read
# them as longs; predict never scores on time columns, and their values are passed through
NANOS_AS_LONG = "spark.sql.legacy.parquet.nanosAsLong"


@contextmanager
def parquet_nanos_as_long(spark: SparkSession) -> Iterator[None]:
    """Read Parquet nanosecond timestamps (pandas') as long integers inside the block."""
    before = spark.conf.get(NANOS_AS_LONG, "false")
    spark.conf.set(NANOS_AS_LONG, "true")
    try:
        yield
    finally:
        spark.conf.set(NANOS_AS_LONG, before or "false")


_KIND_TYPES: dict[str, tuple[type[DataType], ...]] = {
    "string": (StringType,),
    "boolean": (BooleanType,),
    # whole numbers in a floating column are fine (checked value by value, as the server does)
    "integer": (ByteType, ShortType, IntegerType, LongType, FloatType, DoubleType, DecimalType),
    "double": (ByteType, ShortType, IntegerType, LongType, FloatType, DoubleType, DecimalType),
}


def check_rows(rows: DataFrame, model: ResolvedModel) -> None:
    """Refuse, in one sentence, rows the model would refuse: a missing column, a column of
    the wrong type, a null where it needs a value, a value outside the column's range."""
    missing = [name for name in model.input_columns if name not in rows.columns]
    if missing:
        raise TweetopsError(
            f"The input lacks the model's input columns {missing}: predict needs "
            f"{', '.join(model.input_columns)} (extra columns are ignored)."
        )
    if rows.isEmpty():  # nothing to refuse (and an empty pandas column has no real type)
        return
    types = {column.name: column.dataType for column in rows.schema.fields}
    for name, kind in model.kinds.items():
        if not isinstance(types[name], _KIND_TYPES.get(kind, ())):
            raise TweetopsError(
                f"Column {name!r} of the input is {types[name].simpleString()}, but the model "
                f"needs {'a ' if kind != 'integer' else 'an '}{kind} column: convert it."
            )
    problems = []
    for name, kind in model.kinds.items():
        column = F.col(name)
        if kind != "string":
            problems.append((name, "is null", column.isNull()))
        if isinstance(types[name], (FloatType, DoubleType)):
            problems.append((name, "is NaN", F.isnan(column)))
        if kind == "integer" and not isinstance(
            types[name], (ByteType, ShortType, IntegerType, LongType)
        ):
            problems.append((name, "is not a whole number", column != F.floor(column)))
        low, high = model.ranges.get(name, (None, None))
        if low is not None:
            problems.append((name, f"is below {low}", column < F.lit(low)))
        if high is not None:
            problems.append((name, f"is above {high}", column > F.lit(high)))
    if not problems:
        return
    flags = [
        condition.alias(f"_problem_{index}") for index, (_, _, condition) in enumerate(problems)
    ]
    key = [F.col(KEY_COLUMN)] if KEY_COLUMN in rows.columns else []
    bad = (
        rows.select(*key, *flags)
        .where(
            reduce(
                operator.or_,
                [F.coalesce(F.col(f"_problem_{i}"), F.lit(False)) for i in range(len(problems))],
            )
        )
        .first()
    )
    if bad is not None:
        index = next(i for i in range(len(problems)) if bad[f"_problem_{i}"])
        name, problem, _ = problems[index]
        where = f" (tweet {bad[KEY_COLUMN]})" if key else ""
        raise TweetopsError(
            f"Column {name!r} {problem} in a row of the input{where}: the model refuses it; "
            f"fix or drop such rows."
        )


def score(
    spark: SparkSession, loaded: LoadedModel, rows: DataFrame, output_path: Path | str
) -> int:
    """Score `rows` with the `loaded` model through `spark_udf`; write Parquet to `output_path`.

    The output has the key and label when the input has them, the prediction, and the model's
    name, version and alias. Returns the number of rows scored.
    """
    model = loaded.resolved
    check_rows(rows, model)
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
    return spark.read.parquet(spark_path(output_path)).count()


def held_out_rmse(
    spark: SparkSession, model: ResolvedModel, output_path: Path | str
) -> tuple[float | None, int, bool]:
    """The rmse of the written scores, the rows it is on, and whether they are all held out.

    With the tweet id and the model's split known, only the test rows of that split count;
    otherwise every labelled row does. No labelled row: no rmse.
    """
    written = spark.read.parquet(spark_path(output_path))
    if LABEL_COLUMN not in written.columns:
        return None, 0, False
    held_out = model.split is not None and KEY_COLUMN in written.columns
    if held_out:
        assert model.split is not None
        written = written.where(
            is_test_row(
                seed=int(model.split["seed"]), test_fraction=float(model.split["test_fraction"])
            )
        )
    squared = (F.col(PREDICTION_COLUMN) - F.col(LABEL_COLUMN)) ** 2
    labelled = written.where(F.col(LABEL_COLUMN).isNotNull())
    measured = labelled.agg(F.sqrt(F.avg(squared)), F.count(F.lit(1))).first()
    assert measured is not None
    if not measured[1]:
        return None, 0, held_out
    return float(measured[0]), int(measured[1]), held_out


def _first_line(exc: BaseException) -> str:
    """The first line of a Spark error, without its Java stack."""
    text = getattr(exc, "desc", None) or str(exc)
    return str(text).strip().splitlines()[0][:300] if str(text).strip() else type(exc).__name__


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
            model = loaded.resolved
            if (
                isinstance(config.input_path, Path)
                and config.input_path.resolve() == settings.data.training_rows.resolve()
            ):
                # the features table: what a killed or failed features run left is refused
                require_training_rows(config.input_path)
            with parquet_nanos_as_long(run.spark):
                rows = read_rows(run.spark, config.input_path)
                count = score(run.spark, loaded, rows, config.output_path)
                rmse, rmse_rows, held_out = held_out_rmse(run.spark, model, config.output_path)
            return PredictResult(
                rows=count,
                output_path=str(config.output_path),
                rmse=rmse,
                model_uri=config.model_uri,
                model_version=model.version,
                rmse_rows=rmse_rows,
                held_out=held_out,
            )

        return run_step(settings, "predict", ("predict", "spark"), core, needs_spark=True)
