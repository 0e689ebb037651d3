"""The whole chain as `mlflow run .` runs it, then the champion served by `mlflow models serve`."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import requests
from mlflow.tracking import MlflowClient

from tests.e2e.conftest import copy_project, run, user_env
from tests.support.mlflow_server import MLFLOW_RUN, free_port, http_server, models_serve_command
from tweetops.schema import MODEL_INPUT_COLUMNS

pytestmark = pytest.mark.slow


def test_mlflow_run_main_then_serve_the_champion(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "tweetops", ingest={"n_users": 300}, train={"num_trees": 20})
    env = user_env()
    run(
        [*MLFLOW_RUN, "-P", "ingest.n_tweets=3000"],
        cwd=project,
        env=env,
    )

    # MLflow's own default store, in the project root: `mlflow ui` there shows every run
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tweetops")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.data.tags["mlflow.project.entryPoint"] == "main"
    assert parent.data.params["ingest.n_tweets"] == "3000"
    # MLproject declares no parameter: no run carries an empty one (MLflow logs "" as '')
    # and the `-P` key MLflow logged is the setting's one name, `section.key`
    for found in runs:
        assert not {v for v in found.data.params.values() if v in ("", "''")}, found.data.params
    assert all("." in name for name in parent.data.params), sorted(parent.data.params)
    children = {
        r.data.tags["tweetops.step"]: r
        for r in runs
        if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    }
    assert set(children) == {"ingest", "features", "train", "promote"}
    assert children["ingest"].data.metrics["ingest_accepted"] == 3000
    assert children["features"].data.metrics["features_micro_batches"] >= 1
    train_metrics = children["train"].data.metrics
    assert train_metrics["r2"] > train_metrics["baseline_r2"] + 0.3
    champion = client.get_model_version_by_alias("tweet-engagement", "champion")
    assert champion.run_id == children["train"].info.run_id

    rows = pd.read_parquet(project / "data" / "features" / "training").head(25)
    records = rows[list(MODEL_INPUT_COLUMNS)].to_dict(orient="records")
    port = free_port()
    with http_server(
        models_serve_command("models:/tweet-engagement@champion", port),
        port=port,
        health_path="/ping",
        cwd=project,
        env=env,
        log=tmp_path / "serve.log",
        timeout=240,
    ) as base_url:
        invocations = f"{base_url}/invocations"
        answer = requests.post(invocations, json={"dataframe_records": records}, timeout=120)
        assert answer.status_code == 200, answer.text
        predictions = answer.json()["predictions"]
        assert len(predictions) == len(records)
        assert all(math.isfinite(value) and value >= 0 for value in predictions)
        assert len({round(value, 6) for value in predictions}) > 5  # not a constant

        unseen = {**records[0], "lang": "tlh"}  # a language the indexer never saw
        answer = requests.post(invocations, json={"dataframe_records": [unseen]}, timeout=120)
        assert answer.status_code == 200 and len(answer.json()["predictions"]) == 1

        broken = {key: value for key, value in records[0].items() if key != "followers_count"}
        answer = requests.post(invocations, json={"dataframe_records": [broken]}, timeout=120)
        assert answer.status_code == 400
        assert "followers_count" in answer.text
