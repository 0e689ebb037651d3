"""Bench: the two tune backends on the same 12 configurations of the default 20k tweets.

    python bench/tune.py [--tweets 20000] [--configs 12] [--parallelism 2]

Generates the synthetic snapshot and its features once, splits train's training split into fit and
validation rows as `tweetops tune` does, draws `--configs` forest configurations from the tune
ranges of params.yaml (seeded), and scores exactly those configurations with both backends under
Hyperopt: `spark_trials` (scikit-learn forests under SparkTrials, `--parallelism` at once, rows
collected and broadcast once: all included in its wall time) and `mllib` (serial Trials, one Spark
ML fit per trial). Prints the wall time of each and their ratio, the Spearman rank correlation of
the two validation rmses across the configurations, and the Spark ML refit rmse of each backend's
best configuration. Trials are not recorded to MLflow here. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "src"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from hyperopt import SparkTrials, Trials, fmin, hp, rand  # noqa: E402

from tweetops.dataset import load_training_rows  # noqa: E402
from tweetops.features import build_features  # noqa: E402
from tweetops.ingest.step import ingest  # noqa: E402
from tweetops.model.pipeline import build_pipeline, evaluate  # noqa: E402
from tweetops.settings import load_settings  # noqa: E402
from tweetops.spark import build_spark  # noqa: E402
from tweetops.tune.sklearn_trials import SklearnObjective, collect_rows  # noqa: E402
from tweetops.tune.step import _mllib_objective, fit_and_validation_rows, trial_settings  # noqa: E402


def no_record(name: str, params: dict[str, Any], metrics: dict[str, float]) -> str:
    """Trials are not recorded in the bench."""
    return ""


def fixed_order(new_ids: list[int], domain: Any, trials: Any, seed: int) -> list[dict]:
    """A Hyperopt algorithm that proposes configuration number `tid` to trial `tid`."""
    docs = rand.suggest(new_ids, domain, trials, seed)
    for doc in docs:
        doc["misc"]["vals"]["config"] = [doc["tid"]]
    return docs


def draw_configs(count: int, ranges: Any, seed: int) -> list[dict[str, Any]]:
    """`count` configurations from the tune ranges, seeded."""
    rng = np.random.default_rng(seed)
    return [
        {
            "num_trees": int(rng.integers(ranges.num_trees[0], ranges.num_trees[1] + 1)),
            "max_depth": int(rng.integers(ranges.max_depth[0], ranges.max_depth[1] + 1)),
            "min_instances_per_node": int(
                rng.integers(ranges.min_instances_per_node[0], ranges.min_instances_per_node[1] + 1)
            ),
            "subsampling_rate": round(float(rng.uniform(*ranges.subsampling_rate)), 4),
        }
        for _ in range(count)
    ]


def losses(trials: Trials) -> list[float]:
    """Validation rmse per configuration, in configuration order."""
    return [trial["result"]["loss"] for trial in sorted(trials.trials, key=lambda t: t["tid"])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tweets", type=int, default=20_000)
    parser.add_argument("--configs", type=int, default=12)
    parser.add_argument("--parallelism", type=int, default=2)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="tweetops-bench-tune-"))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    os.chdir(root)
    settings = load_settings(
        REPO_ROOT / "params.yaml",
        [
            f"ingest.n_tweets={args.tweets}",
            f"ingest.n_users={max(args.tweets // 10, 10)}",
            "spark.ui_enabled=false",
            "spark.log_level=ERROR",
        ],
    )
    ingest(settings)
    build_features(settings)
    config, base = settings.tune, settings.train
    spark = build_spark(settings.spark)
    fit_rows, validation_rows = (
        split.cache()
        for split in fit_and_validation_rows(
            load_training_rows(spark, base.training_rows_dir), config, base
        )
    )
    counts = fit_rows.count(), validation_rows.count()
    configs = draw_configs(args.configs, config, seed=config.seed)
    space = hp.choice("config", configs)
    options = {
        "algo": fixed_order,
        "max_evals": len(configs),
        "rstate": np.random.default_rng(config.seed),
        "show_progressbar": False,
    }
    print(f"{counts[0]} fit rows, {counts[1]} validation rows, {len(configs)} configurations")

    started = time.perf_counter()
    local = collect_rows(fit_rows, validation_rows, counts, config)
    shipped = spark.sparkContext.broadcast(local)
    sk_trials = SparkTrials(parallelism=args.parallelism, spark_session=spark)
    fmin(
        SklearnObjective(shipped, base, no_record),
        space,
        trials=sk_trials,
        max_queue_len=args.parallelism,
        **options,
    )
    sk_seconds = time.perf_counter() - started
    shipped.destroy()

    started = time.perf_counter()
    ml_trials = Trials()
    fmin(
        _mllib_objective(fit_rows, validation_rows, base, no_record),
        space,
        trials=ml_trials,
        **{**options, "rstate": np.random.default_rng(config.seed)},
    )
    ml_seconds = time.perf_counter() - started

    sk_rmse, ml_rmse = losses(sk_trials), losses(ml_trials)
    table = pd.DataFrame(configs).assign(sklearn_rmse=sk_rmse, spark_ml_rmse=ml_rmse)
    print(table.to_string(index=False))
    spearman = table["sklearn_rmse"].rank().corr(table["spark_ml_rmse"].rank())
    sk_best, ml_best = int(np.argmin(sk_rmse)), int(np.argmin(ml_rmse))
    refit = evaluate(
        build_pipeline(trial_settings(base, configs[sk_best]))
        .fit(fit_rows)
        .transform(validation_rows)
    )["rmse"]
    print(
        f"wall time: spark_trials (parallelism {args.parallelism}) {sk_seconds:.1f} s, "
        f"mllib {ml_seconds:.1f} s: spark_trials {ml_seconds / sk_seconds:.1f}x faster"
    )
    print(f"Spearman rank correlation of validation rmse (sklearn vs Spark ML): {spearman:.3f}")
    print(f"best configuration: spark_trials #{sk_best}, mllib #{ml_best}")
    print(
        f"Spark ML refit rmse of the best: spark_trials {refit:.4f}, "
        f"mllib {ml_rmse[ml_best]:.4f} ({100 * (refit / ml_rmse[ml_best] - 1):+.2f}%)"
    )


if __name__ == "__main__":
    main()
