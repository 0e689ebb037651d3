"""Bench: what `features.label_min_age` does to the model on the default synthetic data.

    python bench/labels.py [--tweets 20000] [--min-ages null "6 hours" "1 day"]

Ingests the default synthetic snapshot (params.yaml's sizes unless --tweets), builds the training
rows once per minimum age (one-shot, no MLflow run) and fits train's pipeline on each with the
default settings: training rows, rows left out as too young, rmse and the mean baseline's rmse on
each table's own test rows. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "src"))

from tweetops.dataset import load_training_rows  # noqa: E402
from tweetops.features import stream_feature_tables  # noqa: E402
from tweetops.ingest.step import ingest  # noqa: E402
from tweetops.settings import load_settings  # noqa: E402
from tweetops.spark import build_spark  # noqa: E402
from tweetops.train import fit_and_score  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tweets", type=int, default=None)
    parser.add_argument("--min-ages", nargs="*", default=["null", "6 hours", "1 day"])
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tweetops-bench-labels-"))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    os.chdir(root)
    try:
        sizes = [] if args.tweets is None else [f"ingest.n_tweets={args.tweets}"]
        quiet = ["spark.ui_enabled=false", "spark.log_level=ERROR"]
        ingest(load_settings(REPO_ROOT / "params.yaml", [*sizes, *quiet]))
        for min_age in args.min_ages:
            settings = load_settings(
                REPO_ROOT / "params.yaml", [*quiet, f"features.label_min_age={min_age}"]
            )
            spark = build_spark(settings.spark)
            result = stream_feature_tables(spark, settings.features)
            rows = load_training_rows(spark, settings.train.training_rows_dir)
            fitted = fit_and_score(spark, rows, settings.train)
            print(
                f"label_min_age={min_age}: {result.training_rows} training rows, "
                f"{result.too_young} too young; rmse {fitted.metrics['rmse']:.4f} "
                f"(baseline {fitted.metrics['baseline_rmse']:.4f}, r2 {fitted.metrics['r2']:.4f})",
                flush=True,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
