"""`mlflow run` as the README shows it: the tuned chain, its champion served by `mlflow models
serve`, tune alone, and any params.yaml key as -P."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import requests
from mlflow.tracking import MlflowClient

from tests.e2e.conftest import copy_project, run, user_env
from tests.support.fake_x_api import FakeXApi
from tests.support.mlflow_server import MLFLOW_RUN, free_port, http_server, models_serve_command
from tweetops.schema import MODEL_INPUT_COLUMNS

pytestmark = pytest.mark.slow

TOKEN = "xtest-bearer-AAAAAAAAAAAAAAAAAAAAAK9qZ7uF2mW4pR8sT1vY3nB6cD0eH5jL"


def _serve_the_champion(project: Path, env: dict[str, str], log: Path) -> None:
    """`mlflow models serve` of the registry's champion scores rows, an unseen language, and
    answers 400 naming a missing column."""
    rows = pd.read_parquet(project / "data" / "features" / "training").head(25)
    records = rows[list(MODEL_INPUT_COLUMNS)].to_dict(orient="records")
    port = free_port()
    with http_server(
        models_serve_command("models:/tweet-engagement@champion", port),
        port=port,
        health_path="/ping",
        cwd=project,
        env=env,
        log=log,
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


def test_mlflow_run_tune_true_trains_the_champion_then_serves_it(tmp_path: Path) -> None:
    project = copy_project(
        tmp_path / "tweetops",
        ingest={"n_users": 250},
        tune={"num_trees": [5, 15], "max_depth": [3, 6]},
        spark={"ui_enabled": False},
    )
    env = user_env()
    # max_evals and parallelism are not declared by `main`: they reach it as --key value
    done = run(
        [
            *MLFLOW_RUN,
            "-P",
            "tune=true",
            "-P",
            "n_tweets=2500",
            "-P",
            "max_evals=3",
            "-P",
            "tune.parallelism=2",
        ],
        cwd=project,
        env=env,
        timeout=1500,
    )
    assert "SparkTrials" in done.stdout + done.stderr

    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tweetops")
    runs = client.search_runs([experiment.experiment_id])
    (main,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert main.data.tags["mlflow.project.entryPoint"] == "main"
    assert main.info.status == "FINISHED" and main.info.run_name == "main n2500 tuned"
    # MLproject declares no parameter: no run carries an empty one (MLflow logs "" as '')
    for found in runs:
        assert not {v for v in found.data.params.values() if v in ("", "''")}, found.data.params
    steps = {
        r.data.tags["tweetops.step"]: r
        for r in runs
        if r.data.tags.get("mlflow.parentRunId") == main.info.run_id
    }
    assert set(steps) == {"ingest", "features", "tune", "train", "promote"}
    assert steps["ingest"].data.metrics["ingest_accepted"] == 2500
    assert steps["features"].data.metrics["features_micro_batches"] >= 1
    tune_run = steps["tune"]
    # trials ran in Spark workers that inherited MLFLOW_RUN_ID (the main run): they nest under
    # the tune run instead of resuming main
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == tune_run.info.run_id]
    assert len(trials) == 3
    assert {r.data.tags["tweetops.step"] for r in trials} == {"tune-trial"}
    assert "validation_rmse" not in main.data.metrics

    best = json.loads((project / "reports" / "tune.json").read_text())
    assert best["run_id"] == tune_run.info.run_id
    train_run = steps["train"]
    assert train_run.data.tags["tweetops.tuned_from.run_id"] == tune_run.info.run_id
    for key, value in best["best_params"].items():
        assert train_run.data.params[f"train.{key}"] == str(value)
    champion = client.get_model_version_by_alias("tweet-engagement", "champion")
    assert champion.run_id == train_run.info.run_id

    # the parent carries what a user compares without opening its children
    assert main.data.params["main.tune"] == "true"
    assert main.data.params["train.num_trees"] == str(best["best_params"]["num_trees"])
    assert main.data.params["ingest.n_tweets"] == "2500"
    assert main.data.metrics["rmse"] == train_run.data.metrics["rmse"]
    assert main.data.metrics["baseline_r2"] == train_run.data.metrics["baseline_r2"]
    assert main.data.metrics["registered_version"] == float(champion.version)
    assert main.data.metrics["promoted"] == 1.0
    split = train_run.data.metrics
    assert main.data.metrics["training_rows"] == split["train_rows"] + split["test_rows"]
    assert main.data.metrics["tune_refit_validation_rmse"] > 0

    _serve_the_champion(project, env, tmp_path / "serve.log")

    # tune alone: the entry point's own run is the parent of one nested run per trial
    done = run(
        [*MLFLOW_RUN, "-e", "tune", "-P", "max_evals=2", "-P", "parallelism=2"],
        cwd=project,
        env=env,
        timeout=1200,
    )
    assert "SparkTrials" in done.stdout + done.stderr
    runs = client.search_runs([experiment.experiment_id])
    alone = next(r for r in runs if r.data.tags.get("mlflow.project.entryPoint") == "tune")
    assert "mlflow.parentRunId" not in alone.data.tags
    assert alone.info.run_name.startswith("tune spark_trials x2 data:")
    nested = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == alone.info.run_id]
    assert len(nested) == 2 and all(r.info.run_id != alone.info.run_id for r in nested)


def test_mlflow_run_ingest_takes_any_ingest_key_as_p(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "tweetops")
    env = user_env(X_BEARER_TOKEN=TOKEN)
    env.pop("TWITTER_BEARER_TOKEN", None)
    with FakeXApi(token=TOKEN, n_tweets=55, n_users=7, page_size=10) as api:
        # api_base_url and tweets_per_file are not declared by the entry point
        run(
            [
                *MLFLOW_RUN,
                "-e",
                "ingest",
                "-P",
                f"api_base_url={api.base_url}",
                "-P",
                "source=search",
                "-P",
                "max_tweets=30",
                "-P",
                "ingest.tweets_per_file=20",
            ],
            cwd=project,
            env=env,
            timeout=600,
        )

    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tweetops")
    (ingest_run,) = client.search_runs([experiment.experiment_id])
    assert ingest_run.data.params["ingest.api_base_url"] == api.base_url
    assert ingest_run.data.params["ingest.tweets_per_file"] == "20"
    assert ingest_run.data.metrics["ingest_accepted"] == 30
    assert len(list((project / "data" / "raw" / "tweets").rglob("*.jsonl"))) == 2
