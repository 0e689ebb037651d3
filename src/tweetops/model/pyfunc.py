"""The served model: the exported pipeline as an MLflow `python_function`, with strict inputs.

`mlflow models serve` loads :class:`EngagementModel`, which reads the arrays of
:mod:`tweetops.model.arrays` and scores with numpy: no JVM, a few milliseconds per request.

Inputs are checked before scoring, never coerced: a missing column, a value of the wrong type
(`"false"` for a boolean), a null where the model needs a value, or a fractional value in an
integer column is refused with one sentence naming the column and the row (MLflow answers it
with HTTP 400, without a stack trace). A categorical column (`lang`) may be null or a value the
model never saw: both take the indexer's "unknown" index, as Spark's `handleInvalid="keep"` does.

The logged signature lists the input columns with type `Any` and as optional, on purpose: MLflow's
scoring server casts JSON to the signature's types before the model sees it (`astype(bool)`
turns `"false"` into true, `astype(int64)` truncates 19.7), so the column types are checked here,
from the kinds stored beside the arrays (`pipeline.json`).
"""

from __future__ import annotations

import json
import math
import numbers
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.pyfunc.model import PythonModel
from mlflow.types.schema import AnyType, ColSpec, Schema

from tweetops.model import PREDICTION_COLUMN
from tweetops.model.arrays import ExportedPipeline, Forest

ARTIFACT_KEY = "pipeline"
ARRAYS_FILE = "forest.npz"
DESCRIPTION_FILE = "pipeline.json"
KINDS = ("string", "boolean", "integer", "double")


class InputError(ValueError):
    """An input the model refuses to score; the message names the column and the row."""


def column_kind(spark_type_name: str) -> str:
    """The input kind of a Spark SQL type name (`string`, `boolean`, `integer`, `double`)."""
    name = spark_type_name.lower()
    if name in ("string", "varchar", "char"):
        return "string"
    if name == "boolean":
        return "boolean"
    if name in ("tinyint", "smallint", "int", "integer", "bigint", "long", "short", "byte"):
        return "integer"
    if name in ("float", "double") or name.startswith("decimal"):
        return "double"
    raise ValueError(f"input columns of type {spark_type_name} cannot be served")


def validate_inputs(frame: pd.DataFrame, kinds: Mapping[str, str]) -> dict[str, np.ndarray]:
    """Check every model input column of `frame` against its kind; return the columns as arrays.

    Strings may be null; booleans must be true/false; integers whole numbers; doubles finite
    numbers. Raises InputError naming the first offending row and column.
    """
    missing = [name for name in kinds if name not in frame.columns]
    if missing:
        raise InputError(
            f"row 0: column {missing[0]!r} is missing (the model needs {', '.join(kinds)})"
        )
    columns = {}
    for name, kind in kinds.items():
        columns[name] = _checked_column(frame[name], name, kind)
    return columns


def _checked_column(series: pd.Series, name: str, kind: str) -> np.ndarray:
    fast = _vectorised(series, kind)
    if fast is not None:
        return fast
    values = series.to_numpy(dtype=object)
    if kind == "string":
        for row, value in enumerate(values):
            if not (value is None or isinstance(value, str) or _is_nan(value)):
                _refuse(row, name, "must be a string or null", value)
        return np.asarray(
            [value if isinstance(value, str) else None for value in values], dtype=object
        )
    out = np.empty(len(values), dtype=np.float64)
    for row, value in enumerate(values):
        if value is None or _is_nan(value):
            _refuse(row, name, "is null; the model needs a value", value)
        if kind == "boolean":
            if not isinstance(value, bool | np.bool_):
                _refuse(row, name, "must be true or false", value)
        elif isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
            _refuse(row, name, f"must be a{'n integer' if kind == 'integer' else ' number'}", value)
        elif not math.isfinite(float(value)):
            _refuse(row, name, "must be a finite number", value)
        elif kind == "integer" and float(value) != math.floor(float(value)):
            _refuse(row, name, "must be a whole number (an integer column)", value)
        out[row] = float(value)
    return out


def _vectorised(series: pd.Series, kind: str) -> np.ndarray | None:
    """The column as floats when its dtype already proves it valid; None to check value by value.

    JSON gives int64 for a column of whole numbers and bool for a column of booleans; anything
    else (object, float with a fraction or NaN) takes the row-by-row check and its message.
    """
    dtype = series.dtype
    if (kind == "boolean" and pd.api.types.is_bool_dtype(dtype)) or (
        kind in ("integer", "double") and pd.api.types.is_integer_dtype(dtype)
    ):
        floats: np.ndarray = series.to_numpy(dtype=np.float64)
        return floats
    if pd.api.types.is_float_dtype(dtype) and kind in ("integer", "double"):
        values = series.to_numpy(dtype=np.float64)
        whole = kind == "double" or bool(np.all(values == np.floor(values)))
        return values if whole and bool(np.all(np.isfinite(values))) else None
    return None


def _is_nan(value: Any) -> bool:
    return isinstance(value, float | np.floating) and math.isnan(value)


def _refuse(row: int, name: str, problem: str, value: Any) -> None:
    shown = "null" if value is None or _is_nan(value) else json.dumps(_plain(value))
    kind = type(_plain(value)).__name__ if value is not None else "null"
    raise InputError(f"row {row}: column {name!r} {problem}, got {shown} ({kind})")


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


class EngagementModel(PythonModel):
    """The exported Spark pipeline, scored with numpy; refuses inputs it cannot score.

    `predict` has no type hints, on purpose: MLflow would derive a signature, and its casting,
    from them. `_skip_type_hint_validation` tells MLflow so (it would warn otherwise).
    """

    _skip_type_hint_validation = True

    def load_context(self, context: Any) -> None:
        """Read the arrays and the input description logged with the model."""
        folder = Path(context.artifacts[ARTIFACT_KEY])
        described = json.loads((folder / DESCRIPTION_FILE).read_text(encoding="utf-8"))
        with np.load(folder / ARRAYS_FILE) as arrays:
            forest = Forest.from_arrays({key: arrays[key] for key in arrays.files})
        self.kinds: dict[str, str] = described["kinds"]
        self.pipeline = ExportedPipeline(
            labels=described["labels"],
            indexed=described["indexed"],
            assembled=described["assembled"],
            forest=forest,
        )

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        """Predictions for the rows of `model_input`; a refused input raises a 400 error."""
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        if len(frame) == 0:
            return np.zeros(0, dtype=np.float64)
        try:
            columns = validate_inputs(frame, self.kinds)
        except InputError as exc:
            raise MlflowException.invalid_parameter_value(str(exc)) from None
        return self.pipeline.predict(columns)


def input_signature(kinds: Mapping[str, str]) -> ModelSignature:
    """The logged signature: every input column, type Any and optional (checked in predict)."""
    return ModelSignature(
        inputs=Schema([ColSpec(AnyType(), name, required=False) for name in kinds]),
        outputs=Schema([ColSpec("double", PREDICTION_COLUMN)]),
    )


def log_serving_model(
    exported: ExportedPipeline,
    kinds: Mapping[str, str],
    example: pd.DataFrame,
    *,
    name: str = "model",
) -> Any:
    """Log the JVM-free pyfunc of `exported` in the active run; return MLflow's ModelInfo.

    `kinds` maps each raw input column to its kind (see :func:`column_kind`).
    """
    unknown = sorted(set(exported.input_columns) - set(kinds))
    if unknown:
        raise ValueError(f"no input kind for the pipeline's columns {unknown}")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / ARTIFACT_KEY
        folder.mkdir()
        # numpy's hint takes `allow_pickle` for any keyword; the arrays are keywords here
        np.savez(folder / ARRAYS_FILE, **exported.forest.to_arrays())  # type: ignore[arg-type]
        (folder / DESCRIPTION_FILE).write_text(
            json.dumps(
                {
                    "kinds": dict(kinds),
                    "labels": exported.labels,
                    "indexed": exported.indexed,
                    "assembled": exported.assembled,
                },
                indent=2,
            ),
            encoding="utf-8",
        )
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=EngagementModel(),
            artifacts={ARTIFACT_KEY: str(folder)},
            signature=input_signature(kinds),
            input_example=example,
            pip_requirements=[
                f"mlflow=={mlflow.__version__}",
                f"numpy=={np.__version__}",
                f"pandas=={pd.__version__}",
            ],
            metadata={"input_kinds": dict(kinds), "flavor": "tweetops numpy forest, no JVM"},
        )
