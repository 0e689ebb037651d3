"""Bench: how long a Spark step's driver takes to start, with and without the class archive.

    python bench/spark_start.py [--repeats 3]

Each start is a new process, as a `tweetops <step>` is: `build_spark` on the default
`local[2]` settings, then a first tiny job. Prints seconds to the session and to the first
result, the median of the repeats, with the archive (`python -m tweetops.spark_cds`, which
`make` runs once) and without it (an empty cache folder: the JDK's own class archive only), in
the same run, and their ratio.
Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import json, sys, time
started = time.perf_counter()
from tweetops.settings import load_settings
from tweetops.spark import build_spark
spark = build_spark(load_settings(sys.argv[1], ["spark.ui_enabled=false"]).spark)
session = time.perf_counter() - started
spark.range(1000).selectExpr("id % 7 AS k").groupBy("k").count().collect()
print(json.dumps({"session": session, "first_result": time.perf_counter() - started}))
"""


def start_once(env: dict[str, str]) -> dict[str, float]:
    """One new driver process; its seconds to the session and to the first result."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(REPO_ROOT / "params.yaml")],
        capture_output=True,
        text=True,
        check=True,
        env={**env, "PYTHONPATH": str(REPO_ROOT / "src")},
    )
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from tweetops.spark import CACHE_DIR_VARIABLE, archive_path, java_executable

    archive = archive_path(java_executable())
    if not archive.is_file():
        sys.exit(f"no class archive at {archive}: run `make spark-archive` first")
    results: dict[str, list[dict[str, float]]] = {"archive": [], "no archive": []}
    without = {**os.environ, CACHE_DIR_VARIABLE: tempfile.mkdtemp(prefix="tweetops-no-cds-")}
    for _ in range(args.repeats):  # interleaved, so load changes hit both alike
        results["archive"].append(start_once(dict(os.environ)))
        results["no archive"].append(start_once(without))
    medians = {
        name: {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        for name, runs in results.items()
    }
    print(f"driver start, median of {args.repeats} (load {os.getloadavg()[0]:.1f}):")
    for name, figures in medians.items():
        print(
            f"  {name:>10}: session {figures['session']:5.1f} s, "
            f"first result {figures['first_result']:5.1f} s"
        )
    ratio = medians["no archive"]["first_result"] / medians["archive"]["first_result"]
    print(f"  without / with the archive, to the first result: {ratio:.2f}x")


if __name__ == "__main__":
    main()
