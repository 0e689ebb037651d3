"""Requests as MLflow's scoring server parses them, against a real logged pyfunc (no JVM).

`invocations` is the function behind `POST /invocations` of `mlflow models serve`; an
MlflowException it raises is answered with its `serialize_as_json()` and HTTP status, as the
server's handler does. The real server is exercised in tests/e2e/test_serve_champion.py.
"""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PyFuncModel
from mlflow.pyfunc.scoring_server import invocations

from tests.support.forest import FOREST
from tweetops.model.arrays import ExportedPipeline
from tweetops.model.pyfunc import log_serving_model

KINDS = {"lang": "string", "hour_of_day": "integer"}
RANGES = {"hour_of_day": (0, 23)}


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> PyFuncModel:
    store = tmp_path_factory.mktemp("serving") / "mlflow.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
        patch.delenv("MLFLOW_RUN_ID", raising=False)
        pipeline = ExportedPipeline(
            labels={"lang": ["en", "ja", "fr"]},
            indexed={"lang_index": "lang"},
            assembled=["lang_index", "hour_of_day"],
            forest=FOREST,
        )
        # this store's own experiment: an earlier test's active experiment is not in it
        with mlflow.start_run(experiment_id=mlflow.create_experiment("serving")):
            info = log_serving_model(
                pipeline,
                KINDS,
                pd.DataFrame([{"lang": "en", "hour_of_day": 3}]),
                ranges=RANGES,
            )
        return mlflow.pyfunc.load_model(info.model_uri)


def answer(model: PyFuncModel, body: str, content_type: str) -> tuple[int, dict | list]:
    """Status and JSON body of the scoring server's answer to `body`."""
    schema = model.metadata.get_input_schema()
    try:
        result = invocations(body, content_type, model, schema)
    except MlflowException as exc:
        return exc.get_http_status_code(), json.loads(exc.serialize_as_json())
    return result.status, json.loads(result.response)


def refusal(model: PyFuncModel, body: str, content_type: str = "application/json") -> str:
    status, payload = answer(model, body, content_type)
    assert status == 400, payload
    assert isinstance(payload, dict) and "stack_trace" not in payload
    message = str(payload["message"])
    assert "Failed to predict" not in message and "Traceback" not in message
    return message


def test_the_model_logs_no_input_schema_so_mlflow_neither_casts_nor_drops(
    model: PyFuncModel,
) -> None:
    assert model.metadata.get_input_schema() is None
    assert model.metadata.get_output_schema().input_names() == ["prediction"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"dataframe_records": [{}]}', "the rows have none of the model's columns"),
        ('{"dataframe_records": [[1, 2]]}', "the rows have none of the model's columns"),
        ('{"dataframe_split": {"data": [[1, 2]]}}', "the rows have none of the model's columns"),
        ('{"inputs": [1, 2]}', "the request holds bare values, not rows of named columns"),
        ('{"instances": [[1, 2]]}', "the request holds bare values, not rows of named columns"),
        ('{"dataframe_records": [{"lang": "en"}]}', "column 'hour_of_day' is missing"),
    ],
)
def test_requests_without_the_models_columns_get_a_400_naming_what_is_missing(
    model: PyFuncModel, body: str, expected: str
) -> None:
    message = refusal(model, body)
    assert message.startswith(expected)
    assert "lang, hour_of_day" in message


def test_rows_of_named_columns_score_in_every_json_format(model: PyFuncModel) -> None:
    bodies = [
        '{"dataframe_records": [{"lang": "en", "hour_of_day": 3}, {"lang": null, '
        '"hour_of_day": 7}]}',
        '{"dataframe_split": {"columns": ["lang", "hour_of_day"], "data": [["en", 3], [null, 7]]}}',
        '{"instances": [{"lang": "en", "hour_of_day": 3}, {"lang": null, "hour_of_day": 7}]}',
        '{"inputs": {"lang": ["en", null], "hour_of_day": [3, 7]}}',
    ]
    for body in bodies:
        status, payload = answer(model, body, "application/json")
        assert status == 200, (body, payload)
        assert isinstance(payload, dict)
        assert payload["predictions"] == [5.5, 6.5], body


def test_an_empty_request_gets_an_empty_answer(model: PyFuncModel) -> None:
    assert answer(model, '{"dataframe_records": []}', "application/json") == (
        200,
        {"predictions": []},
    )


def test_a_value_outside_its_range_is_refused_with_the_one_based_row_and_no_dump(
    model: PyFuncModel,
) -> None:
    body = json.dumps(
        {"dataframe_records": [{"lang": "en", "hour_of_day": 3}, {"lang": "en", "hour_of_day": 99}]}
    )
    message = refusal(model, body)
    assert message == ("row 2: column 'hour_of_day' must be between 0 and 23, got 99 (int)")


def test_csv_rows_score_like_json_and_get_the_same_checks(model: PyFuncModel) -> None:
    status, payload = answer(model, "lang,hour_of_day\nen,3\n,7\n", "text/csv")
    assert (status, payload) == (200, {"predictions": [5.5, 6.5]})
    assert refusal(model, "lang,hour_of_day\nen,3\nen,3.5\n", "text/csv").startswith(
        "row 2: column 'hour_of_day' must be a whole number"
    )
    assert refusal(model, "lang,hour_of_day\nen,-4\n", "text/csv").startswith(
        "row 1: column 'hour_of_day' must be between 0 and 23"
    )
    assert refusal(model, "text,likes\nhi,3\n", "text/csv").startswith(
        "the rows have none of the model's columns"
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # more fields on a later line: pandas' own error and stack trace before
        (
            "lang,hour_of_day\nen,3\nen,3,7\n",
            "line 3 of the CSV body has 3 field(s) where the header has 2",
        ),
        # more fields on the only line: pandas took `en` as an index and shifted every value
        ("lang,hour_of_day\nen,3,7\n", "line 2 of the CSV body has 3 field(s)"),
        # fewer fields: pandas padded the row with a null
        ("hour_of_day,lang\n3,en\n7\n", "line 3 of the CSV body has 1 field(s)"),
        ('lang,hour_of_day\nen,3\n"en,7\nja,4\n', "the CSV body ends inside a quoted field "),
        ('lang,hour_of_day\n"en"x,3\n', "line 2 of the CSV body is not valid CSV"),
        ("", "the CSV body is empty"),
    ],
)
def test_a_ragged_or_broken_csv_gets_a_400_naming_the_line(
    model: PyFuncModel, body: str, expected: str
) -> None:
    assert refusal(model, body, "text/csv").startswith(expected)


def test_csv_blank_lines_a_byte_order_mark_and_quoted_commas_still_score(
    model: PyFuncModel,
) -> None:
    body = '\ufefflang,hour_of_day\r\n\r\n"en",3\r\n"fr,ja",7\r\n\r\n'
    assert answer(model, body, "text/csv") == (200, {"predictions": [5.5, 6.5]})
    assert answer(model, "lang,hour_of_day\n", "text/csv") == (200, {"predictions": []})


def test_pyfunc_predict_refuses_a_frame_without_columns(model: PyFuncModel) -> None:
    with pytest.raises(MlflowException, match="the rows have none of the model's columns"):
        model.predict(pd.DataFrame([{}]))
    assert model.predict(pd.DataFrame({"lang": [], "hour_of_day": []})).tolist() == []
    assert np.asarray(model.predict(pd.DataFrame([{"lang": "ja", "hour_of_day": 3}]))).tolist() == [
        6.0
    ]


def test_the_model_directory_holds_the_ranges(model: PyFuncModel) -> None:
    assert model.metadata.metadata["input_ranges"] == {"hour_of_day": [0, 23]}
