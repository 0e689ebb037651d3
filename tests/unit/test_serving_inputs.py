"""The served model without MLflow or Spark: Spark's split semantics in numpy, strict inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.support.forest import DESCRIPTION, FOREST
from tweetops.model.arrays import ExportedPipeline, index_labels, read_forest
from tweetops.model.pyfunc import InputError, column_kind, validate_inputs
from tweetops.schema import INPUT_RANGES, NUMERIC_FEATURES

KINDS = {"lang": "string", "hour_of_day": "integer", "has_media": "boolean", "score": "double"}


def test_categorical_splits_go_left_on_the_left_categories_continuous_on_le_threshold() -> None:
    features = np.array([[0, 99], [2, 99], [1, 5.0], [1, 5.000001], [3, -1], [9, 0]])
    # the mean over both trees; category 9 is none of the left ones: right, then x1 <= 5
    assert FOREST.predict(features).tolist() == [5.5, 5.5, 6.0, 6.5, 6.0, 6.0]
    assert FOREST.predict(np.zeros((0, 2))).tolist() == []


def test_a_forest_description_reads_into_the_forests_arrays() -> None:
    read = read_forest(DESCRIPTION).to_arrays()
    expected = FOREST.to_arrays()
    assert read.keys() == expected.keys()
    for name, array in expected.items():
        np.testing.assert_array_equal(read[name], array, err_msg=name)


def test_a_weighted_tree_is_refused() -> None:
    with pytest.raises(ValueError, match=r"tree 1 is weighted 0\.5, not 1\.0"):
        read_forest(DESCRIPTION.replace("Tree 1 (weight 1.0)", "Tree 1 (weight 0.5)"))


def test_the_indexer_keeps_unseen_and_null_values_in_the_extra_index() -> None:
    values = np.array(["en", "ja", None, "tlh", "es"], dtype=object)
    assert index_labels(values, ["en", "es", "ja"]).tolist() == [0, 2, 3, 3, 1]


def test_the_pipeline_assembles_columns_in_the_assemblers_order() -> None:
    pipeline = ExportedPipeline(
        labels={"lang": ["en", "ja", "fr"]},
        indexed={"lang_index": "lang"},
        assembled=["lang_index", "hour_of_day"],
        forest=FOREST,
    )
    assert pipeline.input_columns == ["lang", "hour_of_day"]
    columns = {
        "hour_of_day": np.array([7.0, 7.0, 5.0]),
        "lang": np.array(["en", "ja", None], dtype=object),
    }
    assert pipeline.predict(columns).tolist() == [5.5, 6.5, 6.0]


def frame(**changes: object) -> pd.DataFrame:
    row = {"lang": "en", "hour_of_day": 19, "has_media": True, "score": 0.5}
    return pd.DataFrame(
        [{"lang": "ja", "hour_of_day": 3, "has_media": False, "score": 2}, {**row, **changes}]
    )


def test_valid_rows_become_float_columns_and_lang_may_be_null_or_unseen() -> None:
    columns = validate_inputs(frame(lang=None), KINDS)
    assert columns["hour_of_day"].tolist() == [3.0, 19.0]
    assert columns["has_media"].tolist() == [0.0, 1.0]
    assert columns["lang"].tolist() == ["ja", None]
    assert validate_inputs(frame(lang="tlh", hour_of_day=19.0), KINDS)["hour_of_day"][1] == 19
    single = validate_inputs(pd.DataFrame([{**frame().iloc[1].to_dict(), "lang": None}]), KINDS)
    assert single["lang"].tolist() == [None]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"has_media": "false"}, "row 2: column 'has_media' must be true or false, got \"false\""),
        ({"has_media": None}, "row 2: column 'has_media' is null; the model needs a value"),
        ({"has_media": 1}, "row 2: column 'has_media' must be true or false, got 1"),
        ({"hour_of_day": 19.7}, "row 2: column 'hour_of_day' must be a whole number"),
        ({"hour_of_day": "19"}, "row 2: column 'hour_of_day' must be an integer, got \"19\""),
        ({"hour_of_day": True}, "row 2: column 'hour_of_day' must be an integer, got true"),
        ({"hour_of_day": None}, "row 2: column 'hour_of_day' is null"),
        ({"score": float("inf")}, "row 2: column 'score' must be a finite number"),
        ({"score": "0.5"}, "row 2: column 'score' must be a number"),
        ({"lang": 3}, "row 2: column 'lang' must be a string or null, got 3"),
    ],
)
def test_wrong_values_are_refused_naming_the_column_and_the_row(
    changes: dict, message: str
) -> None:
    with pytest.raises(InputError) as refused:
        validate_inputs(frame(**changes), KINDS)
    assert str(refused.value).startswith(message)


def test_a_missing_column_is_refused_by_name() -> None:
    with pytest.raises(InputError, match="column 'score' is missing from every row"):
        validate_inputs(frame().drop(columns=["score"]), KINDS)


@pytest.mark.parametrize(
    "rows", [pd.DataFrame([{}]), pd.DataFrame([[1, 2]]), pd.DataFrame([{"text": "hi"}])]
)
def test_rows_without_any_of_the_models_columns_are_refused(rows: pd.DataFrame) -> None:
    with pytest.raises(InputError, match="the rows have none of the model's columns"):
        validate_inputs(rows, KINDS)


RANGES = {"hour_of_day": (0, 23), "score": (0, None), "count": (0, 2**63 - 1)}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"hour_of_day": 99}, "row 2: column 'hour_of_day' must be between 0 and 23, got 99"),
        ({"hour_of_day": -1}, "row 2: column 'hour_of_day' must be between 0 and 23, got -1"),
        ({"score": -0.5}, "row 2: column 'score' must be at least 0, got -0.5"),
        ({"count": 2**63}, "row 2: column 'count' must be between 0 and 9223372036854775807"),
        ({"count": -3}, "row 2: column 'count' must be between 0"),
    ],
)
def test_values_outside_the_declared_ranges_are_refused(changes: dict, message: str) -> None:
    kinds = {**KINDS, "count": "integer"}
    rows = frame(**{name: value for name, value in changes.items() if name != "count"})
    rows["count"] = [1, changes.get("count", 2**63 - 1)]  # 2**63 makes it uint64
    with pytest.raises(InputError) as refused:
        validate_inputs(rows, kinds, RANGES)
    assert str(refused.value).startswith(message)


def test_the_range_ends_are_inside() -> None:
    kinds = {**KINDS, "count": "integer"}
    rows = frame(hour_of_day=23, score=0.0)
    rows["count"] = [0, 2**63 - 1]
    columns = validate_inputs(rows, kinds, RANGES)
    assert columns["hour_of_day"].tolist() == [3.0, 23.0]
    assert columns["count"][1] == float(2**63 - 1)


def test_every_served_range_is_a_model_input() -> None:
    assert set(INPUT_RANGES) <= set(NUMERIC_FEATURES)
    assert INPUT_RANGES["hour_of_day"] == (0, 23)
    assert INPUT_RANGES["followers_count"] == (0, 2**63 - 1)


def test_column_kinds_come_from_spark_type_names() -> None:
    assert [column_kind(name) for name in ("string", "bigint", "int", "boolean", "double")] == [
        "string",
        "integer",
        "integer",
        "boolean",
        "double",
    ]
    with pytest.raises(ValueError, match="cannot be served"):
        column_kind("array<string>")
