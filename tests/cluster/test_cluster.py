"""The tuned chain on `make cluster-up`'s stack: PostgreSQL-backed MLflow server with basic auth,
a Spark standalone master and two workers, all on loopback; then `make cluster-down`.

The tests run in file order on one stack: the chain first, the read-only user's refusals after,
and `cluster-down` last.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import psutil
import pytest
import requests
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from tests.cluster.conftest import Cluster
from tests.e2e.conftest import copy_project, run
from tests.support.mlflow_server import free_port, http_server
from tweetops.registry import history, move_champion
from tweetops.schema import MODEL_INPUT_COLUMNS

# the first test also starts the stack and runs the whole chain: minutes on a busy machine
pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.timeout(2700)]

MODEL = "tweet-engagement"
MAX_EVALS = 4
STEPS = {"ingest", "features", "tune", "train", "promote"}


@dataclass
class Chain:
    project: Path
    client: MlflowClient
    main: Run
    steps: dict[str, Run]
    trials: list[Run]


@pytest.fixture(scope="module")
def admin(cluster: Cluster) -> Iterator[MlflowClient]:
    """This process talks to the server as the admin cluster-up created."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            patch.setenv(name, cluster.exports[name])
        yield MlflowClient(cluster.exports["MLFLOW_TRACKING_URI"])


@pytest.fixture(scope="module")
def chain(cluster: Cluster, admin: MlflowClient, tmp_path_factory: pytest.TempPathFactory) -> Chain:
    """`mlflow run . -P tune=true` on the cluster, as a user who pasted the export lines."""
    project = copy_project(
        tmp_path_factory.mktemp("cluster-chain") / "tweetops",
        ingest={"n_users": 200},
        tune={"num_trees": [5, 15], "max_depth": [3, 6]},
        spark={"ui_enabled": False},
    )
    run(
        [
            *(sys.executable, "-m", "mlflow", "run", ".", "--env-manager", "local"),
            *("--experiment-name", "tweetops"),
            *("-P", "tune=true", "-P", "n_tweets=2000", "-P", f"max_evals={MAX_EVALS}"),
            *("-P", f"spark.master={cluster.exports['SPARK_MASTER_URL']}"),
        ],
        cwd=project,
        env=cluster.env(),
        timeout=2400,
    )
    experiment = admin.get_experiment_by_name("tweetops")
    assert experiment is not None
    runs = admin.search_runs([experiment.experiment_id], max_results=1000)
    main = next(r for r in runs if r.data.tags.get("mlflow.project.entryPoint") == "main")
    steps = {
        r.data.tags["tweetops.step"]: r
        for r in runs
        if r.data.tags.get("mlflow.parentRunId") == main.info.run_id
    }
    trials = [
        r
        for r in runs
        if "tune" in steps and r.data.tags.get("mlflow.parentRunId") == steps["tune"].info.run_id
    ]
    return Chain(project, admin, main, steps, trials)


def test_the_tuned_chain_runs_on_the_cluster_with_trials_on_both_workers(
    chain: Chain, cluster: Cluster
) -> None:
    assert chain.main.info.status == "FINISHED"
    assert set(chain.steps) == STEPS
    assert chain.steps["tune"].data.tags["tweetops.spark.master"].startswith("spark://127.0.0.1:")
    assert len(chain.trials) == MAX_EVALS
    assert {trial.info.status for trial in chain.trials} == {"FINISHED"}
    assert {trial.data.tags["tweetops.step"] for trial in chain.trials} == {"tune-trial"}
    # a standalone executor runs in <worker work dir>/<app id>/<executor id>
    workers = {
        Path(trial.data.tags["tweetops.tune.worker_dir"])
        .relative_to(cluster.folder / "spark")
        .parts[0]
        for trial in chain.trials
    }
    assert workers == {"worker-1", "worker-2"}
    assert len({trial.data.tags["tweetops.tune.worker_pid"] for trial in chain.trials}) >= 2

    champion = chain.client.get_model_version_by_alias(MODEL, "champion")
    assert champion.run_id == chain.steps["train"].info.run_id


def test_the_champion_is_served_from_the_servers_registry(chain: Chain, cluster: Cluster) -> None:
    rows = pd.read_parquet(chain.project / "data" / "features" / "training").head(20)
    records = [
        {key: (value.item() if hasattr(value, "item") else value) for key, value in row.items()}
        for row in rows[list(MODEL_INPUT_COLUMNS)].to_dict(orient="records")
    ]
    port = free_port()
    # only the tracking variables: the model comes from the server, through its proxy
    tracking = {
        name: cluster.exports[name]
        for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "SPARK_"))}
    env.update(tracking, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    serve = [
        *(sys.executable, "-m", "mlflow", "models", "serve", "--env-manager", "local"),
        *("-m", f"models:/{MODEL}@champion", "--host", "127.0.0.1", "--port", str(port)),
    ]
    with http_server(
        serve,
        port=port,
        health_path="/ping",
        cwd=chain.project,
        env=env,
        log=chain.project / "s.log",
    ) as url:
        answer = requests.post(
            f"{url}/invocations", json={"dataframe_records": records}, timeout=120
        )
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["predictions"]) == len(records) == 20


def test_the_server_answers_401_without_credentials(cluster: Cluster) -> None:
    search = f"{cluster.exports['MLFLOW_TRACKING_URI']}/api/2.0/mlflow/experiments/search"
    assert requests.get(search, params={"max_results": 1}, timeout=30).status_code == 401
    login = (cluster.exports["MLFLOW_TRACKING_USERNAME"], "not-the-password")
    assert (
        requests.get(search, params={"max_results": 1}, auth=login, timeout=30).status_code == 401
    )
    login = (
        cluster.exports["MLFLOW_TRACKING_USERNAME"],
        cluster.exports["MLFLOW_TRACKING_PASSWORD"],
    )
    assert (
        requests.get(search, params={"max_results": 1}, auth=login, timeout=30).status_code == 200
    )


def test_no_password_is_logged_or_on_a_command_line(chain: Chain, cluster: Cluster) -> None:
    secrets = [
        cluster.exports["MLFLOW_TRACKING_PASSWORD"],
        (cluster.folder / "postgres.password").read_text().strip(),
    ]
    runs = chain.client.search_runs([chain.main.info.experiment_id], max_results=1000)
    logged = [
        value
        for logged_run in runs
        for value in [*logged_run.data.params.values(), *logged_run.data.tags.values()]
    ]
    reports = [path.read_text() for path in (chain.project / "reports").rglob("*.json")]
    command_lines = []
    for process in psutil.process_iter(["cmdline"]):
        command_lines.append(" ".join(process.info["cmdline"] or []))
    for secret in secrets:
        assert len(secret) >= 24
        assert not [value for value in logged if secret in value]
        assert not [text for text in reports if secret in text]
        assert not [line for line in command_lines if secret in line]


def test_a_read_only_user_cannot_promote_or_roll_back(chain: Chain, cluster: Cluster) -> None:
    # imported here: mlflow.server takes a second to import, paid by every collection otherwise
    from mlflow.server import get_app_client

    auth = get_app_client("basic-auth", tracking_uri=cluster.exports["MLFLOW_TRACKING_URI"])
    auth.create_user("reader", "reader-password-1234")
    auth.grant_user_permission("reader", "experiment", chain.main.info.experiment_id, "READ")
    auth.grant_user_permission("reader", "registered_model", MODEL, "READ")
    champion = chain.client.get_model_version_by_alias(MODEL, "champion").version
    reader = cluster.env(
        MLFLOW_TRACKING_USERNAME="reader", MLFLOW_TRACKING_PASSWORD="reader-password-1234"
    )
    tweetops = str(Path(sys.executable).parent / "tweetops")

    done = run_refused([tweetops, "promote"], chain.project, reader)

    assert_refused_to_reader(done)
    assert chain.client.get_model_version_by_alias(MODEL, "champion").version == champion

    # the admin makes a second champion, so the reader's rollback has a version to go back to
    first = chain.client.get_model_version(MODEL, champion)
    logged_model = first.model_id or first.source.removeprefix("models:/")
    second = chain.client.create_model_version(
        MODEL, first.source, run_id=first.run_id, model_id=logged_model
    ).version
    move_champion(chain.client, MODEL, str(second), action="promote", reason="admin's pick")
    moves = [move.to_version for move in history(chain.client, MODEL)]
    assert moves[-2:] == [str(champion), str(second)]

    done = run_refused([tweetops, "registry", "rollback"], chain.project, reader)

    assert_refused_to_reader(done)
    assert chain.client.get_model_version_by_alias(MODEL, "champion").version == str(second)
    assert [move.to_version for move in history(chain.client, MODEL)] == moves


def assert_refused_to_reader(done: subprocess.CompletedProcess[str]) -> None:
    """One `error:` line saying the server refused user 'reader' and what permission to ask."""
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, done.stderr
    assert "refused" in errors[0] and "'reader'" in errors[0] and "EDIT" in errors[0]
    assert "Traceback" not in done.stderr


def run_refused(
    command: list[str], cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run `command`, which must stop with exit code 2 (a TweetopsError)."""
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 2, f"{command} exited {done.returncode}\n{done.stderr[-3000:]}"
    return done


def test_cluster_down_stops_every_process_cluster_up_started(cluster: Cluster) -> None:
    pid_files = [
        *(cluster.folder / "pids").glob("*.pid"),
        cluster.folder / "postgres" / "data" / "postmaster.pid",
    ]
    started = [psutil.Process(int(path.read_text().split()[0])) for path in pid_files]
    assert len(started) == 5  # PostgreSQL, the MLflow server, the master, two workers
    family = [
        *started,
        *(child for process in started for child in process.children(recursive=True)),
    ]
    assert len(family) > len(started)  # postgres' backends, the server's uvicorn workers

    down = cluster.down()

    assert down.returncode == 0, down.stderr
    assert not [
        process for process in family if process.is_running() and process.status() != "zombie"
    ]
    assert not [path for path in pid_files if path.exists()]
