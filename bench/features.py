"""Bench: the features job on synthetic tweets, against DuckDB, batch sizing, live lag, caching.

    python bench/features.py [--tweets 1000000] [--live-tweets 20000] [--storage-rows 100000]
                             [--sizing-files 10 50] [--skip duckdb live storage single]

1. Spark, the features step with the defaults (one-shot `availableNow`, the three tables):
   wall time, tweets/s, micro-batches, peak RSS of the Python driver and of the JVM (a child).
2. Spark, the same with a single micro-batch: the ratio default / single is the cost of the
   default micro-batch sizing.
3. DuckDB computes the per-user table from the same JSONL files; the ratio Spark / DuckDB is
   printed and the two user tables are checked equal. Spark then computes the user table alone
   (a batch read, no state, no other table): the ratio of that to DuckDB is Spark's floor here.
4. Live lag: a live run (`trigger=continuous`, 5 s) over a small snapshot; part files of 1,000
   new tweets appear one at a time; lag = file visible -> the micro-batch that includes it has
   written the user table (its state committed). p50 and max.
5. `train.storage_level`: train's `fit_and_score` on the training rows at each level.

Prints figures, asserts nothing (a table mismatch is printed, not raised).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "src"))

from tweetops.features import build_features  # noqa: E402
from tweetops.ingest.step import ingest  # noqa: E402
from tweetops.settings import Settings, load_settings  # noqa: E402
from tweetops.spark import build_spark, spark_path  # noqa: E402

QUIET = ["spark.ui_enabled=false", "spark.log_level=ERROR"]


def _settings(root: Path, tweets: int, *extra: str) -> Settings:
    return load_settings(
        REPO_ROOT / "params.yaml",
        [
            f"data.raw_tweets={root / 'raw/tweets'}",
            f"data.raw_manifests={root / 'raw/manifests'}",
            f"data.raw_quarantine={root / 'raw/quarantine'}",
            f"data.users={root / 'features/users'}",
            f"data.training_rows={root / 'features/training'}",
            f"data.user_activity={root / 'features/user_activity'}",
            f"data.late={root / 'features/late'}",
            f"data.rejected={root / 'features/rejected'}",
            f"data.features_checkpoints={root / 'checkpoints'}",
            f"ingest.n_tweets={tweets}",
            f"ingest.n_users={max(tweets // 10, 10)}",
            *QUIET,
            *extra,
        ],
    )


class PeakRss:
    """Samples the RSS of this process and of its children (the JVM) every 0.2 s."""

    def __init__(self) -> None:
        self.driver = self.jvm = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            self.driver = max(self.driver, me.memory_info().rss)
            jvm = 0
            for child in me.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    jvm += child.memory_info().rss
            self.jvm = max(self.jvm, jvm)
            time.sleep(0.2)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def _spark_run(settings: Settings, label: str, tweets: int) -> float:
    with PeakRss() as rss:
        started = time.perf_counter()
        result = build_features(settings)
        seconds = time.perf_counter() - started
    print(
        f"spark {label}: {seconds:.1f} s, {tweets / seconds:,.0f} tweets/s, "
        f"{result.micro_batches} micro-batches, {result.users} users, {result.training_rows} "
        f"training rows, {result.activity_rows} activity windows; peak RSS driver "
        f"{rss.driver / 2**20:,.0f} MiB, JVM {rss.jvm / 2**20:,.0f} MiB",
        flush=True,
    )
    return seconds


DUCKDB_USERS = """
WITH raw AS (
  SELECT * FROM read_json('{glob}', format='newline_delimited', columns={{
    'id': 'VARCHAR', 'created_at': 'VARCHAR',
    'public_metrics': 'STRUCT(retweet_count BIGINT, reply_count BIGINT, like_count BIGINT,
                              quote_count BIGINT)',
    'referenced_tweets': 'STRUCT(type VARCHAR, id VARCHAR)[]',
    'author': 'STRUCT(id VARCHAR, username VARCHAR, created_at VARCHAR, verified BOOLEAN,
                      public_metrics STRUCT(followers_count BIGINT, following_count BIGINT,
                      tweet_count BIGINT, listed_count BIGINT, like_count BIGINT))'}})
), t AS (
  SELECT author.id AS user_id, CAST(id AS BIGINT) AS tid,
         epoch_ms(CAST(replace(created_at, 'Z', '') AS TIMESTAMP)) AS at_ms,
         coalesce(len(list_filter(referenced_tweets, lambda r: r.type = 'retweeted')) > 0, false)
           AS is_retweet,
         coalesce(public_metrics.retweet_count, 0) + coalesce(public_metrics.reply_count, 0)
           + coalesce(public_metrics.like_count, 0) + coalesce(public_metrics.quote_count, 0)
           AS engagement,
         author.public_metrics AS p
  FROM (SELECT DISTINCT ON (id) * FROM raw)
)
SELECT user_id, count(*) AS tweets_seen,
       count(*) FILTER (WHERE NOT is_retweet) AS original_tweets,
       count(*) FILTER (WHERE is_retweet) AS retweets_made,
       arg_max(p.followers_count, (at_ms, tid)) AS followers_count,
       arg_max(p.following_count, (at_ms, tid)) AS following_count,
       arg_max(p.tweet_count, (at_ms, tid)) AS tweet_count,
       min(at_ms) AS first_ms, max(at_ms) AS last_ms,
       coalesce(sum(engagement) FILTER (WHERE NOT is_retweet), 0) AS total_engagement,
       round(avg(ln(1 + engagement)) FILTER (WHERE NOT is_retweet), 9) AS mean_engagement
FROM t GROUP BY user_id
"""

SPARK_USERS = """
SELECT user_id, tweets_seen, original_tweets, retweets_made, followers_count, following_count,
       tweet_count, epoch_ms(first_tweet_at) AS first_ms, epoch_ms(last_tweet_at) AS last_ms,
       total_engagement, round(mean_engagement, 9) AS mean_engagement
FROM read_parquet('{folder}/*.parquet')
"""


def _duckdb(settings: Settings) -> float:
    import duckdb

    con = duckdb.connect()
    glob = f"{settings.features.raw_dir}/*.jsonl"
    started = time.perf_counter()
    con.execute(f"CREATE TABLE duck AS {DUCKDB_USERS.format(glob=glob)}")
    seconds = time.perf_counter() - started
    con.execute(f"CREATE TABLE spark AS {SPARK_USERS.format(folder=settings.features.users_dir)}")
    rows = con.execute("SELECT count(*) FROM duck").fetchone()[0]
    diff = con.execute(
        "SELECT (SELECT count(*) FROM (SELECT * FROM duck EXCEPT ALL "
        "SELECT * FROM spark)), (SELECT count(*) FROM (SELECT * FROM spark "
        "EXCEPT ALL SELECT * FROM duck))"
    ).fetchone()
    print(
        f"duckdb users table: {seconds:.1f} s, {rows} users; equal to Spark's: "
        f"{diff == (0, 0)} (rows only in duckdb / only in spark: {diff[0]} / {diff[1]})",
        flush=True,
    )
    return seconds


def _spark_users_only(settings: Settings) -> float:
    """Spark's floor for the comparison: the user table alone, one batch read of the JSON."""
    from tweetops.features.batch import read_raw_batch
    from tweetops.features.parse import parse_tweets, valid_tweets
    from tweetops.features.tables import user_features

    spark = build_spark(settings.spark)
    target = settings.features.checkpoint_dir.parent / "bench_users_only"
    started = time.perf_counter()
    raw = read_raw_batch(spark, settings.features.raw_dir)
    user_features(valid_tweets(parse_tweets(raw))).write.mode("overwrite").parquet(
        spark_path(target)
    )
    seconds = time.perf_counter() - started
    print(
        f"spark user table only (batch read, no state, no other table): {seconds:.1f} s", flush=True
    )
    return seconds


def _live_lag(root: Path, tweets: int) -> None:
    base = _settings(root, tweets, "ingest.synthetic_days=2")
    ingest(base)
    later = root / "later"
    extra = _settings(
        later,
        8000,
        "ingest.tweets_per_file=1000",
        "ingest.seed=7",
        "ingest.synthetic_start_time=2026-10-03T00:00:00Z",
        "ingest.synthetic_days=1",
    )
    ingest(extra)
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'live.db'}"}
    args = [
        sys.executable,
        "-m",
        "tweetops",
        "features",
        "-q",
        "--params",
        str(REPO_ROOT / "params.yaml"),
        "-S",
        "features.trigger=continuous",
        "-S",
        "features.trigger_interval_s=5",
    ]
    for override in (
        f"data.{key}={value}"
        for key, value in {
            "raw_tweets": base.features.raw_dir,
            "users": base.features.users_dir,
            "training_rows": base.features.training_rows_dir,
            "user_activity": base.features.user_activity_dir,
            "late": base.features.late_dir,
            "rejected": base.features.rejected_dir,
            "features_checkpoints": base.features.checkpoint_dir,
        }.items()
    ):
        args += ["-S", override]
    args += [arg for o in QUIET for arg in ("-S", o)]
    state_dir = base.features.checkpoint_dir / "state"

    def processed() -> int:
        if process.poll() is not None:
            raise SystemExit(f"the live run stopped with exit code {process.returncode}")
        states = list(state_dir.glob("*.json")) if state_dir.is_dir() else []
        if not states:
            return 0
        return json.loads(max(states, key=lambda p: int(p.stem)).read_text())["input_rows"]

    process = subprocess.Popen(args, cwd=root, env=env)
    try:
        while processed() < tweets:
            time.sleep(0.2)
        lags, expected = [], tweets
        for part in sorted(extra.features.raw_dir.glob("*.jsonl")):
            expected += len(part.read_bytes().splitlines())
            os.replace(part, base.features.raw_dir / part.name)
            written = time.perf_counter()
            while processed() < expected:
                time.sleep(0.05)
            lags.append(time.perf_counter() - written)
            time.sleep(2.0)  # files land at staggered points of the trigger interval
        print(
            f"live lag (5 s trigger, {tweets} tweets before): p50 {statistics.median(lags):.1f} "
            f"s, max {max(lags):.1f} s over {len(lags)} files",
            flush=True,
        )
    finally:
        process.terminate()
        process.wait(timeout=300)


def _storage_levels(settings: Settings, rows_cap: int) -> None:
    from tweetops.dataset import load_training_rows
    from tweetops.settings import TrainSettings
    from tweetops.train import fit_and_score

    spark = build_spark(settings.spark)
    rows = load_training_rows(spark, settings.train.training_rows_dir).limit(rows_cap)
    rows = spark.createDataFrame(rows.toPandas())  # a fixed input, off the files
    rows.write.mode("overwrite").parquet(
        spark_path(settings.features.checkpoint_dir.parent / "bench_rows")
    )
    fixed = spark.read.parquet(spark_path(settings.features.checkpoint_dir.parent / "bench_rows"))
    for level in ("MEMORY_ONLY", "MEMORY_AND_DISK", "DISK_ONLY", "none"):
        config = TrainSettings.model_validate(
            {**settings.train.model_dump(), "storage_level": level}
        )
        started = time.perf_counter()
        fitted = fit_and_score(fixed, config)
        print(
            f"train.storage_level={level}: fit_and_score {time.perf_counter() - started:.1f} s"
            f" on {fitted.train_rows + fitted.test_rows} rows (r2 {fitted.metrics['r2']:.4f})",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tweets", type=int, default=1_000_000)
    parser.add_argument("--live-tweets", type=int, default=20_000)
    parser.add_argument("--storage-rows", type=int, default=100_000)
    parser.add_argument(
        "--sizing-files",
        type=int,
        nargs="*",
        default=[],
        help="also run with these maxFilesPerTrigger caps, against the default",
    )
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["single", "duckdb", "live", "storage"]
    )
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="tweetops-bench-features-"))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    os.chdir(root)  # MLflow puts a SQLite store's artifacts under ./mlruns
    try:
        settings = _settings(root, args.tweets)
        started = time.perf_counter()
        ingest(settings)
        parts = len(list(settings.features.raw_dir.glob("*.jsonl")))
        print(
            f"\n{args.tweets} synthetic tweets in {parts} part files "
            f"(ingest {time.perf_counter() - started:.0f} s)",
            flush=True,
        )
        build_spark(settings.spark)  # JVM start-up is not the job's cost
        default = _spark_run(settings, "defaults", args.tweets)
        if "duckdb" not in args.skip:
            duck = _duckdb(settings)
            print(
                f"ratio Spark (three tables) / DuckDB (user table): {default / duck:.1f}x",
                flush=True,
            )
            alone = _spark_users_only(settings)
            print(
                f"ratio Spark (user table only) / DuckDB (user table): {alone / duck:.1f}x",
                flush=True,
            )
        if "storage" not in args.skip:
            _storage_levels(settings, args.storage_rows)
        if parts <= settings.features.max_files_per_trigger:
            print("the default sizing reads these part files in one micro-batch")
        elif "single" not in args.skip:
            single = _spark_run(
                _settings(root, args.tweets, f"features.max_files_per_trigger={parts}"),
                "one micro-batch",
                args.tweets,
            )
            print(f"ratio default sizing / one micro-batch: {default / single:.2f}x", flush=True)
        for files in args.sizing_files:
            capped = _spark_run(
                _settings(root, args.tweets, f"features.max_files_per_trigger={files}"),
                f"maxFilesPerTrigger={files}",
                args.tweets,
            )
            print(
                f"ratio maxFilesPerTrigger={files} / defaults: {capped / default:.2f}x", flush=True
            )
        if "live" not in args.skip:
            _live_lag(root / "live", args.live_tweets)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
