"""Bench: the Structured Streaming features job against its batch twin on the same snapshot.

    python bench/features.py [--tweets 100000] [--files-per-trigger 1 2 4]

Generates a synthetic snapshot once, then times (1) the batch job (`build_features_batch`, both
tables written once: the reference) and (2) the streaming job (`build_features`, availableNow)
at each `maxFilesPerTrigger`. Prints raw rows/s for each and the ratio streaming/batch: the cost
of micro-batching (per-batch planning, state store, checkpoint commits). Asserts nothing.
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

from tweetops.features import build_features, build_features_batch  # noqa: E402
from tweetops.ingest.step import ingest  # noqa: E402
from tweetops.settings import Settings, load_settings  # noqa: E402
from tweetops.spark import build_spark, spark_path  # noqa: E402


def _settings(root: Path, tweets: int, files_per_trigger: int) -> Settings:
    return load_settings(REPO_ROOT / "params.yaml", [
        f"ingest.n_tweets={tweets}", f"ingest.n_users={max(tweets // 10, 10)}",
        f"ingest.raw_dir={root / 'raw/tweets'}", f"ingest.manifest_dir={root / 'raw/manifests'}",
        f"ingest.quarantine_dir={root / 'raw/quarantine'}",
        f"features.raw_dir={root / 'raw/tweets'}", f"features.users_dir={root / 'users'}",
        f"features.training_dir={root / 'training'}", f"features.rejected_dir={root / 'rejected'}",
        f"features.checkpoint_dir={root / 'checkpoints'}",
        f"features.max_files_per_trigger={files_per_trigger}",
        "spark.ui_enabled=false", "spark.log_level=ERROR",
    ])


def _time_batch(settings: Settings, root: Path) -> float:
    spark = build_spark(settings.spark)
    started = time.perf_counter()
    users, training = build_features_batch(spark, settings.features.raw_dir)
    users.write.mode("overwrite").parquet(spark_path(root / "batch_users"))
    training.write.mode("overwrite").parquet(spark_path(root / "batch_training"))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tweets", type=int, default=100_000)
    parser.add_argument("--files-per-trigger", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="tweetops-bench-features-"))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    os.chdir(root)  # MLflow puts a SQLite store's artifacts under ./mlruns
    try:
        settings = _settings(root, args.tweets, 1)
        ingest(settings)
        parts = len(list(settings.features.raw_dir.glob("*.jsonl")))
        _time_batch(settings, root)  # warm-up: JIT, first-job overheads
        batch_seconds = _time_batch(settings, root)
        print(f"\n{args.tweets} tweets in {parts} part files")
        print(f"batch (reference):          {args.tweets / batch_seconds:>10,.0f} rows/s "
              f"({batch_seconds:.1f} s)")
        for files_per_trigger in args.files_per_trigger:
            result = build_features(_settings(root, args.tweets, files_per_trigger))
            ratio = result.rows_per_second * batch_seconds / args.tweets
            print(f"streaming maxFilesPerTrigger={files_per_trigger}: "
                  f"{result.rows_per_second:>10,.0f} rows/s ({result.seconds:.1f} s, "
                  f"{result.micro_batches} micro-batches), "
                  f"ratio streaming/batch {ratio:.2f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
