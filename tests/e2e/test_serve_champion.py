"""The champion as users meet it: `mlflow models serve` of the registry alias, with no JVM.

One trained and promoted model, one real scoring server: its answers equal Spark's `transform`
on the whole test split, it never starts `java`, and every kind of bad input gets a 400 that
names the column and the row, without a stack trace.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import mlflow.spark
import numpy as np
import pandas as pd
import psutil
import pytest
import requests
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from tests.conftest import TrainedProject
from tests.support.mlflow_server import free_port, http_server, models_serve_command
from tests.support.stores import STORE_NAME, copy_project, sqlite_uri
from tweetops.dataset import load_training_rows, split_train_test
from tweetops.promote import promote
from tweetops.schema import MODEL_INPUT_COLUMNS

pytestmark = pytest.mark.slow


@dataclass
class Served:
    url: str
    pid: int
    records: list[dict]  # valid rows of the test split, JSON-ready
    expected: np.ndarray  # Spark's transform of the same rows


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
    spark: SparkSession,
    trained_project_template: TrainedProject,
) -> Iterator[Served]:
    # a copy of the session's small trained project, its model promoted to champion
    root = tmp_path_factory.mktemp("serve") / "project"
    copy_project(trained_project_template.root, root)
    trained = trained_project_template.trained
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        tracking_uri = sqlite_uri(root / STORE_NAME)
        patch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
        patch.delenv("MLFLOW_RUN_ID", raising=False)
        settings = TrainedProject(root, trained).settings()
        promote(settings)

        rows = load_training_rows(spark, settings.train.training_rows_dir)
        _, test = split_train_test(
            rows, seed=settings.train.seed, test_fraction=settings.train.test_fraction, partitions=2
        )
        # every 7th row an unseen language, every 11th a null one: both take the unknown index
        number = F.abs(F.hash("tweet_id"))
        test = test.withColumn(
            "lang",
            F.when(number % 7 == 0, F.lit("tlh"))
            .when(number % 11 == 0, F.lit(None).cast("string"))
            .otherwise(F.col("lang")),
        )
        spark_model = mlflow.spark.load_model(trained.spark_model_uri)
        scored = spark_model.transform(test).select(*MODEL_INPUT_COLUMNS, "prediction")
        table = scored.toPandas()
        assert table["lang"].isna().any() and (table["lang"] == "tlh").any()
        records = [
            {
                key: (None if value is None else value.item() if hasattr(value, "item") else value)
                for key, value in record.items()
            }
            for record in table[list(MODEL_INPUT_COLUMNS)].to_dict(orient="records")
        ]

        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
            "MLFLOW_TRACKING_URI": tracking_uri,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        }
        command = models_serve_command("models:/tweet-engagement@champion", port)
        log = root / "serve.log"
        with http_server(
            command, port=port, health_path="/ping", cwd=root, env=env, log=log
        ) as url:
            pid = next(
                process.pid
                for process in psutil.Process().children()
                if str(port) in " ".join(process.cmdline())
            )
            yield Served(url=url, pid=pid, records=records, expected=table["prediction"].to_numpy())


def invoke(served: Served, records: list[dict]) -> requests.Response:
    return requests.post(
        f"{served.url}/invocations", json={"dataframe_records": records}, timeout=60
    )


def test_the_served_champion_equals_spark_on_the_whole_test_split(served: Served) -> None:
    answer = invoke(served, served.records)
    assert answer.status_code == 200, answer.text
    predictions = np.asarray(answer.json()["predictions"], dtype=float)
    assert len(predictions) == len(served.expected) > 100
    assert np.max(np.abs(predictions - served.expected)) < 1e-9


def test_serving_starts_no_jvm(served: Served) -> None:
    assert invoke(served, served.records[:1]).status_code == 200
    family = [psutil.Process(served.pid), *psutil.Process(served.pid).children(recursive=True)]
    names = [" ".join([process.name(), *process.cmdline()[:1]]) for process in family]
    assert len(family) >= 2  # mlflow's CLI and the uvicorn worker it runs
    assert not [name for name in names if "java" in name.lower()], names


def test_an_empty_request_gets_an_empty_answer(served: Served) -> None:
    answer = invoke(served, [])
    assert answer.status_code == 200 and answer.json()["predictions"] == []


def test_a_single_row_with_a_null_lang_scores_as_inside_a_larger_request(served: Served) -> None:
    row = {**served.records[0], "lang": None}
    alone = invoke(served, [row])
    paired = invoke(served, [served.records[1], row])
    assert alone.status_code == 200 and paired.status_code == 200, alone.text
    assert alone.json()["predictions"][0] == pytest.approx(
        paired.json()["predictions"][1], abs=1e-12
    )


@pytest.mark.parametrize(
    ("change", "column", "problem"),
    [
        ({"has_media": "false"}, "has_media", "must be true or false"),
        ({"has_media": None}, "has_media", "is null"),
        ({"hour_of_day": 19.7}, "hour_of_day", "must be a whole number"),
        ({"followers_count": "5400"}, "followers_count", "must be an integer"),
        ({"lang": 42}, "lang", "must be a string or null"),
        ({"hour_of_day": 99}, "hour_of_day", "must be between 0 and 23"),
        ({"followers_count": -5}, "followers_count", "must be between 0 and"),
        ({"followers_count": 2**63}, "followers_count", "must be between 0 and"),
        ("drop followers_count", "followers_count", "is missing"),
    ],
)
def test_a_bad_value_gets_a_400_naming_the_column_and_the_row(
    served: Served, change: object, column: str, problem: str
) -> None:
    good = served.records[0]
    if isinstance(change, dict):
        bad = {**good, **change}
    else:
        bad = {key: value for key, value in good.items() if key != change.split()[-1]}
    answer = invoke(served, [good, bad] if isinstance(change, dict) else [bad])
    assert answer.status_code == 400, answer.text
    message = answer.json()["message"]
    where = "row 2: " if isinstance(change, dict) else ""
    assert message.startswith(f"{where}column '{column}' {problem}"), message
    assert "stack_trace" not in answer.json() and "Failed to predict" not in message
    assert "Traceback" not in answer.text and ".py" not in answer.text


@pytest.mark.parametrize(
    "body", [{"dataframe_records": [{}]}, {"dataframe_records": [[1, 2]]}, {"inputs": [1, 2]}]
)
def test_rows_without_the_models_columns_get_a_400_not_an_empty_answer(
    served: Served, body: dict
) -> None:
    answer = requests.post(f"{served.url}/invocations", json=body, timeout=60)
    assert answer.status_code == 400, answer.text
    assert "followers_count" in answer.json()["message"]
    assert "Failed to predict" not in answer.text and "Traceback" not in answer.text


def test_csv_rows_score_as_json_does_with_the_same_checks(served: Served) -> None:
    rows = pd.DataFrame(served.records[:5])
    csv = requests.post(
        f"{served.url}/invocations",
        data=rows.to_csv(index=False),
        headers={"Content-Type": "text/csv"},
        timeout=60,
    )
    assert csv.status_code == 200, csv.text
    assert csv.json()["predictions"] == pytest.approx(
        invoke(served, served.records[:5]).json()["predictions"], abs=1e-12
    )
    rows.loc[1, "hour_of_day"] = 99
    refused = requests.post(
        f"{served.url}/invocations",
        data=rows.to_csv(index=False),
        headers={"Content-Type": "text/csv"},
        timeout=60,
    )
    assert refused.status_code == 400
    assert refused.json()["message"].startswith("row 2: column 'hour_of_day' must be between 0")
    assert "Traceback" not in refused.text
    ragged = requests.post(
        f"{served.url}/invocations",
        data=rows.to_csv(index=False) + "en,1,2\n",  # one field too many for the header
        headers={"Content-Type": "text/csv"},
        timeout=60,
    )
    assert ragged.status_code == 400
    assert ragged.json()["message"].startswith("line 7 of the CSV body has 3 field(s)")
    assert "stack_trace" not in ragged.json() and "Traceback" not in ragged.text
