"""Workers that share nothing with the driver: the issue's four failures, then features and tune
succeeding on them.

A standalone master and one worker (`--cores 1`) start through the cluster stack's own
:func:`start_spark`; the worker runs under `unshare --mount`, where the repository (its `src/`
and `.venv`) and the project folder are empty, and the virtualenv shows at another path, where
only the workers have it. So on the worker: no driver interpreter path, no tweetops, no project
files. What both sides see is one shared folder, reached through `file:///` locations, and a
loopback `mlflow server`.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import REPO_ROOT, TEST_SPARK_OVERRIDES, Project
from tests.support.mlflow_server import free_port, mlflow_server
from tweetops.cluster.stack import ClusterPorts, Layout, spark_home, start_spark, stop_spark

pytestmark = [
    pytest.mark.slow,
    pytest.mark.cluster,
    pytest.mark.timeout(1800),
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("unshare") is None,
        reason="an isolated worker needs root and unshare(1) for its own mount namespace",
    ),
]

MAX_EVALS = 2
SMALL = (
    *TEST_SPARK_OVERRIDES,
    "ingest.n_tweets=400",
    "ingest.n_users=60",
    f"tune.max_evals={MAX_EVALS}",
    "tune.parallelism=1",
    "tune.num_trees=[5, 10]",
    "tune.max_depth=[3, 5]",
    "spark.conf={spark.executor.memory: 512m}",
)


@dataclass
class IsolatedCluster:
    """A master and an isolated worker; where the worker finds the virtualenv."""

    master: str
    layout: Layout
    worker_venv: Path
    hidden: list[Path]
    empty: Path

    def wrap(self, command: list[str]) -> list[str]:
        """`command` in a new mount namespace: the virtualenv moved to `worker_venv`, each of
        `hidden` an empty folder."""
        venv = Path(sys.prefix)
        moved = [part.replace(str(venv), str(self.worker_venv)) for part in command]
        mounts = [f"mount --bind {shlex.quote(str(venv))} {shlex.quote(str(self.worker_venv))}"]
        mounts += [
            f"mount --bind {shlex.quote(str(self.empty))} {shlex.quote(str(folder))}"
            for folder in self.hidden
        ]
        home = str(spark_home()).replace(str(venv), str(self.worker_venv))
        script = " && ".join(mounts)
        script += f" && SPARK_HOME={shlex.quote(home)} exec {shlex.join(moved)}"
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]

    @property
    def worker_python(self) -> str:
        return str(self.worker_venv / "bin" / "python")


@pytest.fixture
def isolated(project: Project, tmp_path: Path) -> Iterator[IsolatedCluster]:
    venv = Path(sys.prefix)
    hidden = [REPO_ROOT, project.root]
    if not venv.is_relative_to(REPO_ROOT):
        hidden.append(venv)
    cluster = IsolatedCluster(
        master="",
        layout=Layout(tmp_path / "cluster"),
        worker_venv=tmp_path / "worker-venv",
        hidden=hidden,
        empty=tmp_path / "empty",
    )
    cluster.worker_venv.mkdir()
    cluster.empty.mkdir()
    ports = ClusterPorts(
        postgres=free_port(),
        mlflow=free_port(),
        spark=free_port(),
        spark_ui=free_port(),
        worker_ui=free_port(),
    )
    cluster.master = f"spark://127.0.0.1:{ports.spark}"
    try:
        start_spark(cluster.layout, ports, workers=1, wrap_worker=cluster.wrap)
    except BaseException:
        stop_spark(cluster.layout)
        raise
    try:
        yield cluster
    finally:
        stopped = stop_spark(cluster.layout)  # raises when a process outlives SIGKILL
    assert stopped == ["spark-worker-1", "spark-master"]


def _shared_data(shared: Path) -> list[str]:
    """Every `data.*` location as a file:/// URI under `shared`."""
    data = yaml.safe_load((REPO_ROOT / "plumbing.yaml").read_text())["data"]
    return [f"data.{key}={(shared / value).as_uri()}" for key, value in data.items()]


def _tweetops(
    project: Path, env: dict[str, str], step: str, settings: list[str], expect: int = 0
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "tweetops", step]
    for item in settings:
        command += ["-S", item]
    done = subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode == expect, f"{step}: exit {done.returncode}\n{done.stderr[-6000:]}"
    return done


def _one_error(done: subprocess.CompletedProcess[str]) -> str:
    """The single `error:` line of a refused step (no traceback)."""
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, done.stderr[-6000:]
    assert "Traceback" not in done.stderr
    return errors[0]


def test_the_four_isolated_worker_failures_and_features_and_tune_with_the_fixes(
    isolated: IsolatedCluster, project: Project, tmp_path: Path
) -> None:
    # the namespace isolates for real: no tweetops, no driver interpreter on the worker
    probe = subprocess.run(
        isolated.wrap(
            [
                str(Path(sys.prefix) / "bin" / "python"),
                "-c",
                "import os; print(os.path.exists(os.environ['DRIVER_PYTHON'])); import tweetops",
            ]
        ),
        env={**os.environ, "DRIVER_PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert probe.stdout.strip() == "False"
    assert "No module named 'tweetops'" in probe.stderr

    shared = tmp_path / "shared"
    with mlflow_server(tmp_path / "tracking", timeout=600) as tracking_uri:
        env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
        env.update(MLFLOW_TRACKING_URI=tracking_uri, SPARK_LOCAL_IP="127.0.0.1")
        env.pop("PYSPARK_PYTHON", None)
        on_cluster = [f"spark.master={isolated.master}", *SMALL]

        # 1. driver-local data paths: the executors cannot read them
        _tweetops(project.root, env, "ingest", on_cluster)
        refused = _one_error(_tweetops(project.root, env, "features", on_cluster, expect=2))
        assert "could not find file:" in refused and "file:/// URI" in refused

        # ...on storage both sides mount, given as file:/// URIs, features run there
        shutil.copytree(project.root / "data" / "raw", shared / "data" / "raw")
        on_shared = [*on_cluster, *_shared_data(shared)]
        _tweetops(project.root, env, "features", on_shared)
        assert any((shared / "data/features/training").rglob("*.parquet"))

        # 4. a SQLite store the executors cannot share: refused before any trial
        sqlite_env = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{project.root / 'mlflow.db'}"}
        refused = _one_error(_tweetops(project.root, sqlite_env, "tune", on_shared, expect=2))
        assert "cannot share the local tracking store" in refused

        # 2. the driver's interpreter is not on the worker: the first trial's error is quoted
        refused = _one_error(_tweetops(project.root, env, "tune", on_shared, expect=2))
        assert "tune trials failed, the first with" in refused
        assert "Cannot run program" in refused and sys.executable in refused

        # 3. the workers' Python without the package shipped: trials could not unpickle
        unshipped = subprocess.run(
            [sys.executable, "-c", UNSHIPPED_JOB, isolated.master],
            env={**env, "PYSPARK_PYTHON": isolated.worker_python},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert unshipped.returncode != 0
        assert "No module named 'tweetops'" in unshipped.stderr

        # with the workers' own PYSPARK_PYTHON kept and the package shipped, tune runs there
        worker_env = {**env, "PYSPARK_PYTHON": isolated.worker_python}
        _tweetops(project.root, worker_env, "tune", on_shared)
        client = MlflowClient(tracking_uri)
        experiment = client.get_experiment_by_name("tweetops")
        assert experiment is not None
        tune_run = next(
            found
            for found in client.search_runs([experiment.experiment_id])
            if found.data.tags.get("tweetops.step") == "tune" and found.info.status == "FINISHED"
        )
        trials = client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{tune_run.info.run_id}'",
        )
        assert len(trials) == MAX_EVALS
        assert {trial.info.status for trial in trials} == {"FINISHED"}
        worker_dir = isolated.layout.worker_dir(1).resolve()
        for trial in trials:  # each trial ran in an executor of the isolated worker
            assert Path(trial.data.tags["tweetops.tune.worker_dir"]).is_relative_to(worker_dir)
        assert (shared / "reports" / "tune.json").exists()


# A plain PySpark job that sends a tweetops function to the executors without shipping the
# package (what tune did before `addPyFile`).
UNSHIPPED_JOB = """
import sys
from pyspark.sql import SparkSession
from tweetops.model.metrics import rmse

spark = SparkSession.builder.master(sys.argv[1]).config("spark.ui.enabled", "false").config(
    "spark.executor.memory", "512m").getOrCreate()
try:
    spark.sparkContext.parallelize([[1.0, 2.0]], 1).map(lambda row: rmse(row, row)).collect()
finally:
    spark.stop()
"""
