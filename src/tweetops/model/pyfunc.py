"""The served model: the exported pipeline as an MLflow `python_function`, with strict inputs.

`mlflow models serve` loads :class:`EngagementModel`, which reads the arrays of
:mod:`tweetops.model.arrays` and scores with numpy: no JVM, a few milliseconds per request.

Inputs are checked before scoring, never coerced: a missing column, a value of the wrong type
(`"false"` for a boolean), a null where the model needs a value, a fractional value in an
integer column, or a value outside the column's range (:data:`tweetops.schema.INPUT_RANGES`) is
refused with one sentence naming the column and the row, counted from 1 (MLflow answers it with
HTTP 400, without a stack trace or a dump of the request). A categorical column (`lang`) may be
null or a value the model never saw: both take the indexer's "unknown" index, as Spark's
`handleInvalid="keep"` does.

The logged signature declares the output only, on purpose: with an input schema MLflow enforces it
before the model sees the rows, casting JSON to its types (`astype(bool)` turns `"false"` into
true, `astype(int64)` truncates 19.7), dropping unknown columns and, when none is known, every
row (a request of rows without the model's columns would get 200 and no predictions), and
breaking CSV parsing when a type is `Any`. So the model checks its inputs itself, from the kinds
and ranges stored beside the arrays (`pipeline.json`, also in the model's metadata).

A CSV body is parsed by the scoring server with pandas before the model sees it: a row with more
fields than the header either shifts every value one column (pandas takes the first as an index)
or fails with pandas' error and a stack trace in the body, a row with fewer fields is padded with
nulls, and an unclosed quote fails with a trace. Loaded inside the scoring server, the model checks
the shape of a CSV body first (:func:`check_csv_shape`, installed by
:func:`install_strict_csv`): a ragged row or a broken quote is a 400 with one sentence naming the
line. MLflow has no hook for this, so the server's parser is wrapped where the server looks it up.
"""

from __future__ import annotations

import csv
import functools
import json
import math
import numbers
import sys
import tempfile
from collections.abc import Callable, Mapping
from io import StringIO
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, set_model
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc.model import PythonModel
from mlflow.types.schema import ColSpec, Schema

from tweetops.model import PREDICTION_COLUMN
from tweetops.model.arrays import ExportedPipeline, Forest

ARTIFACT_KEY = "pipeline"
ARRAYS_FILE = "forest.npz"
DESCRIPTION_FILE = "pipeline.json"
KINDS = ("string", "boolean", "integer", "double")
SCORING_SERVER_MODULE = "mlflow.pyfunc.scoring_server"
_STRICT_CSV_MARK = "_tweetops_strict_csv"


Range = tuple[float | None, float | None]


class InputError(ValueError):
    """An input the model refuses to score; the message names the column and the row."""


class RefusedInput(MlflowException):
    """A refused input as MLflow's scoring server answers it: HTTP 400, our sentence only.

    The server rewrites the message of any MlflowException from `predict` into
    `Failed to predict data '<the whole request as a DataFrame>'. Error: ...`; this message keeps
    the sentence it was created with, so a client reads only that.
    """

    def __init__(self, sentence: str) -> None:
        self._sentence = sentence
        super().__init__(sentence, error_code=INVALID_PARAMETER_VALUE)

    @property
    def message(self) -> str:
        """The sentence the input was refused with."""
        return self._sentence

    @message.setter
    def message(self, _rewritten: str) -> None:
        """Ignore the server's rewrite (see the class docstring)."""


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


def validate_inputs(
    frame: pd.DataFrame,
    kinds: Mapping[str, str],
    ranges: Mapping[str, Range] | None = None,
) -> dict[str, np.ndarray]:
    """Check every model input column of `frame` against its kind; return the columns as arrays.

    Strings may be null; booleans must be true/false; integers whole numbers; doubles finite
    numbers; a column with a range in `ranges` stays inside it. Raises InputError naming the
    first offending row (counted from 1) and column.
    """
    present = [name for name in kinds if name in frame.columns]
    if not present:
        raise InputError(
            f"the rows have none of the model's columns ({', '.join(kinds)}): send objects "
            f"with these names (dataframe_records), dataframe_split with columns, or CSV with "
            f"a header"
        )
    missing = [name for name in kinds if name not in frame.columns]
    if missing:
        raise InputError(
            f"column {missing[0]!r} is missing from every row (the model needs {', '.join(kinds)})"
        )
    columns = {}
    for name, kind in kinds.items():
        columns[name] = _checked_column(frame[name], name, kind)
        if ranges and name in ranges and kind in ("integer", "double"):
            _check_range(frame[name], columns[name], name, ranges[name])
    return columns


def _check_range(series: pd.Series, values: np.ndarray, name: str, bounds: Range) -> None:
    """Refuse the first value of a checked numeric column outside `bounds`."""
    low, high = bounds
    # integers compared as integers (2**63 and 2**63 - 1 are the same float); an object column
    # holds Python numbers, already checked, that compare exactly
    exact = values if pd.api.types.is_float_dtype(series.dtype) else series.to_numpy()
    outside = np.zeros(len(values), dtype=bool)
    if low is not None:
        outside |= np.asarray(exact < low, dtype=bool)
    if high is not None:
        outside |= np.asarray(exact > high, dtype=bool)
    if outside.any():
        row = int(np.argmax(outside))
        if low is not None and high is not None:
            expected = f"between {_bound(low)} and {_bound(high)}"
        elif low is not None:
            expected = f"at least {_bound(low)}"
        else:
            expected = f"at most {_bound(high)}"
        _refuse(row, name, f"must be {expected}", series.iloc[row])


def _bound(value: float | None) -> str:
    return str(int(value)) if value is not None and float(value).is_integer() else str(value)


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


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.ndarray) and value.ndim == 0 else value


def _is_nan(value: Any) -> bool:
    return isinstance(value, float | np.floating) and math.isnan(value)


def _refuse(row: int, name: str, problem: str, value: Any) -> None:
    shown = "null" if value is None or _is_nan(value) else json.dumps(_plain(value), default=str)
    kind = type(_plain(value)).__name__ if value is not None else "null"
    raise InputError(f"row {row + 1}: column {name!r} {problem}, got {shown} ({kind})")


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


class EngagementModel(PythonModel):
    """The exported Spark pipeline, scored with numpy; refuses inputs it cannot score.

    `predict` has no type hints, on purpose: MLflow would derive a signature, and its casting,
    from them. `_skip_type_hint_validation` tells MLflow so (it would warn otherwise).
    """

    _skip_type_hint_validation = True

    def load_context(self, context: Any) -> None:
        """Read the arrays and the input description logged with the model.

        Inside the scoring server, also make it check the shape of CSV bodies
        (:func:`install_strict_csv`).
        """
        install_strict_csv()
        folder = Path(context.artifacts[ARTIFACT_KEY])
        described = json.loads((folder / DESCRIPTION_FILE).read_text(encoding="utf-8"))
        with np.load(folder / ARRAYS_FILE) as arrays:
            forest = Forest.from_arrays({key: arrays[key] for key in arrays.files})
        self.kinds: dict[str, str] = described["kinds"]
        # models logged before ranges were declared have none
        self.ranges: dict[str, Range] = {
            name: (low, high) for name, (low, high) in described.get("ranges", {}).items()
        }
        self.pipeline = ExportedPipeline(
            labels=described["labels"],
            indexed=described["indexed"],
            assembled=described["assembled"],
            forest=forest,
        )

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        """Predictions for the rows of `model_input`; a refused input raises a 400 error."""
        try:
            frame = _as_frame(model_input, self.kinds)
            if len(frame) == 0:
                return np.zeros(0, dtype=np.float64)
            columns = validate_inputs(frame, self.kinds, self.ranges)
        except InputError as exc:
            raise RefusedInput(str(exc)) from None
        return self.pipeline.predict(columns)


def _as_frame(model_input: Any, kinds: Mapping[str, str]) -> pd.DataFrame:
    """The request as a DataFrame of named columns; anything else (bare values) is refused."""
    if isinstance(model_input, pd.DataFrame):
        return model_input
    if isinstance(model_input, dict) and all(isinstance(key, str) for key in model_input):
        # `instances`/`inputs` come as columns of arrays; a null in a column of objects is a
        # zero-dimensional array per value
        try:
            return pd.DataFrame(
                {name: [_scalar(value) for value in column] for name, column in model_input.items()}
            )
        except (TypeError, ValueError):
            pass
    raise InputError(
        f"the request holds bare values, not rows of named columns: send objects with the "
        f"model's columns ({', '.join(kinds)}) as dataframe_records, dataframe_split with "
        f"columns, or CSV with a header"
    )


def check_csv_shape(text: str) -> None:
    """Raise InputError unless every row of the CSV `text` has as many fields as its header.

    Blank lines are skipped (as pandas skips them); a leading byte-order mark is ignored; a
    quote left open, or text after a closing quote, is refused. Lines are counted from 1, the
    header being line 1.
    """
    reader = csv.reader(StringIO(text.removeprefix("\ufeff"), newline=""), strict=True)
    header: list[str] | None = None
    while True:
        starts_on = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                raise InputError(
                    f"the CSV body ends inside a quoted field that starts on line {starts_on}: "
                    f"close the quote (a quote inside a quoted field is written twice)"
                ) from None
            raise InputError(
                f"line {starts_on} of the CSV body is not valid CSV ({exc}): quote a field "
                f"holding a comma, a quote or a line break, and double the quotes inside it"
            ) from None
        if not row:
            continue
        if header is None:
            header = row
        elif len(row) != len(header):
            raise InputError(
                f"line {starts_on} of the CSV body has {len(row)} field(s) where the header "
                f"has {len(header)}: send one value per header column on every line (an empty "
                f"value for a null)"
            )
    if header is None:
        raise InputError(
            "the CSV body is empty: send a header line naming the model's columns, then one "
            "line per row"
        )


def install_strict_csv() -> None:
    """Make the scoring server, when it is loaded in this process, check a CSV body's shape.

    The server parses `text/csv` with its module's `parse_csv_input` before the model is called;
    this wraps that function (once) so a ragged body is refused by :func:`check_csv_shape` with
    HTTP 400 and one sentence. Outside the server (batch predictions, Spark UDFs) nothing is
    imported or changed.
    """
    server = sys.modules.get(SCORING_SERVER_MODULE)
    parse = getattr(server, "parse_csv_input", None)
    if parse is None or getattr(parse, _STRICT_CSV_MARK, False):
        return
    vars(server)["parse_csv_input"] = _strict_csv(parse)


def _strict_csv(parse: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(parse)
    def parse_checked(csv_input: Any, schema: Any = None) -> Any:
        if isinstance(csv_input, StringIO):  # a request body (a file or stdin is left to pandas)
            try:
                check_csv_shape(csv_input.getvalue())
            except InputError as exc:
                raise RefusedInput(str(exc)) from None
        return parse(csv_input=csv_input, schema=schema)

    setattr(parse_checked, _STRICT_CSV_MARK, True)
    return parse_checked


def output_signature() -> ModelSignature:
    """The logged signature: the prediction only (the model checks its inputs, see above)."""
    return ModelSignature(inputs=None, outputs=Schema([ColSpec("double", PREDICTION_COLUMN)]))


def log_serving_model(
    exported: ExportedPipeline,
    kinds: Mapping[str, str],
    example: pd.DataFrame,
    *,
    ranges: Mapping[str, Range] | None = None,
    name: str = "model",
) -> Any:
    """Log the JVM-free pyfunc of `exported` in the active run; return MLflow's ModelInfo.

    `kinds` maps each raw input column to its kind (see :func:`column_kind`); `ranges` the
    numeric ones to the values they may take (see :data:`tweetops.schema.INPUT_RANGES`). The
    model is logged from code, as MLflow recommends: this file is stored with the model and
    names the model with `set_model` when loaded, so nothing is pickled.
    """
    served_ranges = {name: list(bounds) for name, bounds in (ranges or {}).items() if name in kinds}
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
                    "ranges": served_ranges,
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
            python_model=__file__,
            artifacts={ARTIFACT_KEY: str(folder)},
            signature=output_signature(),
            input_example=example,
            pip_requirements=[
                f"mlflow=={mlflow.__version__}",
                f"numpy=={np.__version__}",
                f"pandas=={pd.__version__}",
            ],
            metadata={
                "input_kinds": dict(kinds),
                "input_ranges": served_ranges,
                "flavor": "tweetops numpy forest, no JVM",
            },
        )


# what MLflow loads when it runs this file as the logged model's code (models from code)
set_model(EngagementModel())
