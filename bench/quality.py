"""Bench: the model's quality on the default data, ingest -> features -> train as `make main` runs.

    python bench/quality.py [--set section.key=value ...]

Runs the three steps in a temporary project with the settings files as shipped (20,000 synthetic
tweets, 60 trees), then prints the test split's r2, rmse and mae beside the mean baseline's, and
the figures the defaults were chosen to reach: r2 above 0.5, at least 0.5 above the baseline's,
rmse below 0.75 x the baseline's. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "src"))

from tweetops.features import build_features  # noqa: E402
from tweetops.ingest.step import ingest  # noqa: E402
from tweetops.logs import configure_logging  # noqa: E402
from tweetops.settings import load_settings  # noqa: E402
from tweetops.train import train  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], help="section.key=value"
    )
    args = parser.parse_args()
    configure_logging(-1)
    root = Path(tempfile.mkdtemp(prefix="tweetops-bench-quality-"))
    try:
        for name in ("params.yaml", "plumbing.yaml"):
            shutil.copy(REPO_ROOT / name, root / name)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
        os.chdir(root)
        settings = load_settings(root / "params.yaml", ["spark.ui_enabled=false", *args.overrides])
        started = time.monotonic()
        ingest(settings)
        build_features(settings)
        result = train(settings)
        elapsed = time.monotonic() - started
    finally:
        shutil.rmtree(root, ignore_errors=True)
    metrics = result.metrics
    print(f"tweets {settings.ingest.n_tweets}, trees {settings.train.num_trees}: {elapsed:.0f} s")
    print(f"{'':10}{'model':>10}{'baseline':>10}")
    for name in ("r2", "rmse", "mae"):
        print(f"{name:10}{metrics[name]:>10.4f}{metrics[f'baseline_{name}']:>10.4f}")
    checks = {
        "r2 > 0.5": metrics["r2"] > 0.5,
        "r2 > baseline r2 + 0.5": metrics["r2"] > metrics["baseline_r2"] + 0.5,
        "rmse < 0.75 x baseline rmse": metrics["rmse"] < 0.75 * metrics["baseline_rmse"],
    }
    for label, reached in checks.items():
        print(f"{label:30}{'reached' if reached else 'MISSED'}")


if __name__ == "__main__":
    main()
