"""Bench: the tuned chain on `local[2]` against `make cluster-up`'s two-worker cluster, and the
cluster's tracking server under concurrent writers.

    python bench/cluster.py [--tweets 2000] [--max-evals 4] [--writers 16] [--runs-per-writer 20]

1. `tweetops main -S main.tune=true` on `local[2]` with a SQLite store, then the same on the
   cluster (standalone master, two workers of one core, PostgreSQL-backed `mlflow server` with
   basic auth): wall time of the whole chain and of each step (from its MLflow run).
2. `--writers` processes each create `--runs-per-writer` runs on the server (create, log a batch
   of 5 params and 5 metrics, end): runs/s over all writers, p50/p95 seconds per run, errors.

The cluster is started in a temporary folder on free ports and stopped at the end. Prints
figures, asserts nothing. Both chains share this machine's cores: the cluster's figures show
its overhead (executor start, shuffles over the network stack, HTTP tracking), not a speed-up.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.cluster.conftest import make, parse_exports  # noqa: E402
from tests.e2e.conftest import copy_project, user_env  # noqa: E402
from tests.support.mlflow_server import free_port  # noqa: E402

STEPS = ("ingest", "features", "tune", "train", "promote")


def run_chain(project: Path, env: dict[str, str], master: str, args: argparse.Namespace) -> float:
    """Run the tuned chain in `project`; its wall seconds."""
    command = [
        str(Path(sys.executable).parent / "tweetops"),
        "main",
        *("-S", "main.tune=true", "-S", f"spark.master={master}"),
        *("-S", f"ingest.n_tweets={args.tweets}", "-S", f"tune.max_evals={args.max_evals}"),
        *("-S", "spark.ui_enabled=false", "-S", "spark.log_level=ERROR"),
    ]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        print(f"  chain on {master} failed ({done.returncode}): {done.stderr[-1500:]}")
    return seconds


def step_seconds(env: dict[str, str]) -> dict[str, float]:
    """Seconds of each step's run of the latest `main` run in the store `env` points at."""
    from mlflow.tracking import MlflowClient

    previous = {name: os.environ.get(name) for name in env if name.startswith("MLFLOW_")}
    os.environ.update({k: v for k, v in env.items() if k.startswith("MLFLOW_")})
    try:
        client = MlflowClient()
        experiment = client.get_experiment_by_name("tweetops")
        if experiment is None:
            return {}
        runs = client.search_runs([experiment.experiment_id], max_results=200)
        main = next(r for r in runs if r.data.tags.get("tweetops.step") == "main")
        return {
            r.data.tags["tweetops.step"]: (r.info.end_time - r.info.start_time) / 1000
            for r in runs
            if r.data.tags.get("mlflow.parentRunId") == main.info.run_id and r.info.end_time
        }
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def write_runs(tracking: dict[str, str], writer: int, runs: int) -> tuple[list[float], int]:
    """One writer process: `runs` runs of 5 params and 5 metrics; per-run seconds, errors."""
    os.environ.update(tracking)
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    experiment = client.get_experiment_by_name("bench-writers")
    assert experiment is not None, "bench_writers creates it first"
    experiment_id = experiment.experiment_id
    seconds: list[float] = []
    errors = 0
    for index in range(runs):
        started = time.perf_counter()
        try:
            run = client.create_run(experiment_id, run_name=f"writer{writer}-{index}")
            now = int(time.time() * 1000)
            client.log_batch(
                run.info.run_id,
                metrics=[Metric(f"m{k}", float(k * index), now, 0) for k in range(5)],
                params=[Param(f"p{k}", str(k)) for k in range(5)],
            )
            client.set_terminated(run.info.run_id, "FINISHED")
            seconds.append(time.perf_counter() - started)
        except Exception:  # counted, not raised: the figure is how many fail
            errors += 1
    return seconds, errors


def bench_writers(tracking: dict[str, str], writers: int, runs: int) -> None:
    os.environ.update(tracking)
    from mlflow.tracking import MlflowClient

    MlflowClient().create_experiment("bench-writers")
    started = time.perf_counter()
    with ProcessPoolExecutor(writers) as pool:
        results = list(pool.map(write_runs, [tracking] * writers, range(writers), [runs] * writers))
    wall = time.perf_counter() - started
    latencies = sorted(second for seconds, _ in results for second in seconds)
    errors = sum(error for _, error in results)
    done = len(latencies)
    p95 = latencies[int(0.95 * (done - 1))] if latencies else float("nan")
    print(
        f"tracking server, {writers} concurrent writers x {runs} runs: {done} runs in "
        f"{wall:.1f} s = {done / wall:.1f} runs/s; per run p50 "
        f"{statistics.median(latencies) if latencies else float('nan'):.2f} s, p95 {p95:.2f} s; "
        f"{errors} errors"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tweets", type=int, default=2000)
    parser.add_argument("--max-evals", type=int, default=4)
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--runs-per-writer", type=int, default=20)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="tweetops-bench-cluster-"))
    scratch.chmod(0o711)  # PostgreSQL runs as user postgres when this runs as root
    variables = [
        f"CLUSTER_DIR={scratch / 'cluster'}",
        f"CLUSTER_PG_PORT={free_port()}",
        f"CLUSTER_MLFLOW_PORT={free_port()}",
        f"CLUSTER_SPARK_PORT={free_port()}",
        f"CLUSTER_SPARK_UI_PORT={free_port()}",
        f"CLUSTER_WORKER_UI_PORT={free_port()}",
    ]
    try:
        started = time.perf_counter()
        up = make("cluster-up", *variables)
        if up.returncode != 0:
            print(f"cluster-up failed: {up.stderr}")
            return
        print(f"make cluster-up: {time.perf_counter() - started:.1f} s")
        exports = parse_exports(up.stdout)
        tracking = {k: v for k, v in exports.items() if k.startswith("MLFLOW_")}

        local_project = copy_project(scratch / "local")
        local_env = user_env(MLFLOW_TRACKING_URI=f"sqlite:///{local_project / 'mlflow.db'}")
        cluster_project = copy_project(scratch / "on-cluster")
        cluster_env = user_env(**exports)
        for label, project, env, master in (
            ("local[2], SQLite", local_project, local_env, "local[2]"),
            ("2 workers, server", cluster_project, cluster_env, exports["SPARK_MASTER_URL"]),
        ):
            wall = run_chain(project, env, master, args)
            steps = step_seconds(env)
            per_step = ", ".join(f"{step} {steps[step]:.1f}" for step in STEPS if step in steps)
            print(
                f"chain ({args.tweets} tweets, {args.max_evals} trials) on {label}: "
                f"{wall:.1f} s; steps (s): {per_step}"
            )
        bench_writers(tracking, args.writers, args.runs_per_writer)
    finally:
        down = make("cluster-down", *variables)
        print(down.stdout.strip() or down.stderr.strip())
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
