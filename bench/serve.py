"""Bench: the served champion, JVM-free pyfunc against MLflow's Spark pyfunc of the same pipeline.

    python bench/serve.py [--project DIR] [--requests 300] [--spark-requests 60] [--batches 20]

Without --project, builds a small project in a temp dir first (2,500 synthetic tweets, 20 trees:
ingest, features, train, promote). Then, for the same registered version, serves (1) the
registered JVM-free model, `models:/<name>/<version>`, and (2) the Spark model logged in the same
training run, `runs:/<run>/spark-model`, each with `mlflow models serve --env-manager local`, one
after the other, and prints for each: cold start (process start to the first good answer), single-
row latency p50/p99 over HTTP, rows/s for 1,000-row requests, and whether a `java` process ran
under the server. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import requests

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "src"))
sys.path.insert(0, str(REPO_ROOT))

from tests.support.mlflow_server import free_port  # noqa: E402

MODEL_NAME = "tweet-engagement"


def build_project(root: Path) -> None:
    """ingest -> features -> train -> promote, small, in `root` (its own SQLite store)."""
    for name in ("params.yaml", "plumbing.yaml"):
        (root / name).write_text((REPO_ROOT / name).read_text())
    small = [
        "-S",
        "ingest.n_tweets=2500",
        "-S",
        "ingest.n_users=250",
        "-S",
        "train.num_trees=20",
        "-S",
        "spark.ui_enabled=false",
        "-q",
    ]
    for step in ("ingest", "features", "train", "promote"):
        subprocess.run(
            [sys.executable, "-m", "tweetops", step, *small], cwd=root, check=True, env=_env(root)
        )


def _env(root: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    env["MLFLOW_TRACKING_URI"] = os.environ.get(
        "MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}"
    )
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def records(root: Path, count: int) -> list[dict]:
    """`count` rows of the training table as JSON-ready records of the model's input columns."""
    from tweetops.schema import MODEL_INPUT_COLUMNS

    table = pd.read_parquet(root / "data" / "features" / "training")
    table = pd.concat([table] * (count // len(table) + 1)).head(count)
    return [
        {key: (value.item() if hasattr(value, "item") else value) for key, value in row.items()}
        for row in table[list(MODEL_INPUT_COLUMNS)].to_dict(orient="records")
    ]


def measure(
    root: Path, model_uri: str, rows: list[dict], singles: int, batches: int
) -> dict[str, float | bool]:
    """Serve `model_uri`; time the first good answer, single rows and 1,000-row requests."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/invocations"
    started = time.perf_counter()
    with open(root / f"serve-{port}.log", "wb") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "models",
                "serve",
                "-m",
                model_uri,
                "--env-manager",
                "local",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=root,
            env=_env(root),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        one = {"dataframe_records": rows[:1]}
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"{model_uri}: the server exited; see {log.name}")
            try:
                if requests.post(url, json=one, timeout=120).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.05)
        cold = time.perf_counter() - started
        family = [psutil.Process(server.pid), *psutil.Process(server.pid).children(True)]
        java = any("java" in process.name().lower() for process in family)
        latencies = []
        with requests.Session() as session:
            for index in range(singles):
                body = {"dataframe_records": [rows[index % len(rows)]]}
                begin = time.perf_counter()
                answer = session.post(url, json=body, timeout=120)
                latencies.append(time.perf_counter() - begin)
                assert answer.status_code == 200, answer.text
            batch = {"dataframe_records": rows[:1000]}
            begin = time.perf_counter()
            for _ in range(batches):
                assert session.post(url, json=batch, timeout=300).status_code == 200
            throughput = batches * len(batch["dataframe_records"]) / (time.perf_counter() - begin)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    return {
        "cold_s": cold,
        "p50_ms": 1000 * float(np.percentile(latencies, 50)),
        "p99_ms": 1000 * float(np.percentile(latencies, 99)),
        "rows_per_s": throughput,
        "java": java,
    }


def main() -> None:
    """Parse options, build or open the project, serve both flavours and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=None)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--spark-requests", type=int, default=60)
    parser.add_argument("--batches", type=int, default=20)
    options = parser.parse_args()
    root = options.project or Path(tempfile.mkdtemp(prefix="tweetops-bench-serve-")) / "p"
    if options.project is None:
        root.mkdir(parents=True)
        build_project(root)
    os.environ["MLFLOW_TRACKING_URI"] = _env(root)["MLFLOW_TRACKING_URI"]
    from mlflow.tracking import MlflowClient

    version = MlflowClient().get_model_version_by_alias(MODEL_NAME, "champion")
    rows = records(root, 1000)
    flavours = {
        "jvm-free pyfunc": (
            f"models:/{MODEL_NAME}/{version.version}",
            options.requests,
            options.batches,
        ),
        "spark pyfunc": (
            f"runs:/{version.run_id}/spark-model",
            options.spark_requests,
            max(2, options.batches // 10),
        ),
    }
    figures = {
        name: measure(root, uri, rows, singles, batches)
        for name, (uri, singles, batches) in flavours.items()
    }
    print(f"{MODEL_NAME} v{version.version} (run {version.run_id}), {os.cpu_count()} CPUs")
    print(
        f"{'flavour':<16} {'cold start s':>12} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'rows/s (1000-row requests)':>27} {'java':>5}"
    )
    for name, figure in figures.items():
        print(
            f"{name:<16} {figure['cold_s']:>12.2f} {figure['p50_ms']:>8.2f} "
            f"{figure['p99_ms']:>8.2f} {figure['rows_per_s']:>27.0f} {figure['java']!s:>5}"
        )
    fast, slow = figures["jvm-free pyfunc"], figures["spark pyfunc"]
    print(
        f"ratios spark/jvm-free: p50 x{slow['p50_ms'] / fast['p50_ms']:.1f} "
        f"(target >= 40), cold start x{slow['cold_s'] / fast['cold_s']:.1f} (target >= 5)"
    )


if __name__ == "__main__":
    main()
