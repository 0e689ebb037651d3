"""Bench: the features job on synthetic tweets, against the DuckDB oracle, live throughput.

    python bench/features.py [--tweets 1000000] [--snapshot DIR] [--live-tweets 20000]
                             [--storage-rows 100000]
                             [--live-rates 2000 4000 ...] [--live-seconds 15]
                             [--sizing-files 10 50] [--skip duckdb live storage single]

1. Spark, the one-shot features job with the defaults (`availableNow`, the three tables, no
   MLflow run): wall time, tweets/s, micro-batches, peak RSS of the Python driver and of the
   JVM (a child), and where the time goes (the job's phases, summed over micro-batches, and
   the flush at the end of the run).
2. The DuckDB oracle (tests/support/oracle.py) computes the same three tables with the same
   semantics from the same files; its time, whether Spark's tables equal its tables, and the
   ratio Spark (three tables) / DuckDB (three tables), target at most 4x; and its floors:
   Spark's bare parse of the same files (the job's reader and schema to a `noop` sink) in the
   warm JVM of the run above, and the job's parse and validation of them in a fresh JVM (a new
   process, as every `tweetops features` starts one; its session start-up not counted), each
   against DuckDB.
3. `train.storage_level`: train's `fit_and_score` on the training rows at each level.
4. Spark with a single micro-batch (when the default sizing needs several) and with each
   `--sizing-files` cap: the cost of micro-batch sizing.
5. Live throughput: a live run (`trigger=continuous`, 5 s) over `--live-tweets` tweets; then
   part files of R tweets appear once a second for `--live-seconds` seconds, for each rate R
   of `--live-rates` in turn (the snapshot's tweets, in event-time order); lag = file visible
   -> a committed micro-batch has read it. p50 and max per rate, the mean phases of the
   micro-batches, and the highest rate with p50 lag under 10 s (target at least 6,000/s).

Prints figures, asserts nothing (a table mismatch is printed, not raised).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
from pyspark.sql import DataFrame

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "src"))
sys.path.insert(1, str(REPO_ROOT))  # the DuckDB oracle lives with the tests (a dev dependency)

from tweetops.features import BatchProgress, stream_feature_tables  # noqa: E402
from tweetops.features.step import StopRequest  # noqa: E402
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


def cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and of its children (the JVM) so far."""
    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += sum(child.cpu_times()[:2])
    return total


def load_average() -> str:
    """The machine's 1-minute load average (others' work distorts wall times)."""
    return f"load {os.getloadavg()[0]:.1f}"


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


def _spark_run(settings: Settings, label: str, tweets: int) -> tuple[float, float]:
    """One one-shot run: its wall time and CPU seconds (driver and JVM)."""
    spark = build_spark(settings.spark)
    batches: list[BatchProgress] = []
    with PeakRss() as rss:
        started, cpu_before = time.perf_counter(), cpu_seconds()
        result = stream_feature_tables(spark, settings.features, batches.append)
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu_before
    print(
        f"spark {label}: {seconds:.1f} s ({cpu:.1f} CPU s, {load_average()}), "
        f"{tweets / seconds:,.0f} tweets/s, "
        f"{result.micro_batches} micro-batches, {result.users} users, {result.training_rows} "
        f"training rows ({result.too_young} too young), {result.activity_rows} activity "
        f"windows; peak RSS driver "
        f"{rss.driver / 2**20:,.0f} MiB, JVM {rss.jvm / 2**20:,.0f} MiB",
        flush=True,
    )
    phases: dict[str, float] = {}
    for batch in batches:
        for name, phase_seconds in batch.counts.phase_seconds.items():
            phases[name] = phases.get(name, 0.0) + phase_seconds
    phases["flush at the end"] = result.flush_seconds
    listed = ", ".join(f"{name} {value:.1f} s" for name, value in phases.items())
    print(
        f"spark {label} phases: {listed}; outside them (query, listing, counts) "
        f"{seconds - sum(phases.values()):.1f} s",
        flush=True,
    )
    return seconds, cpu


def _spark_parse(settings: Settings) -> tuple[float, float]:
    """Spark's floor: the bare parse of the snapshot (the job's reader and schema, every column
    to a `noop` sink, so every field is parsed), wall time and CPU seconds."""
    from tweetops.features import read_raw_batch

    spark = build_spark(settings.spark)
    seconds, cpu = _to_noop(read_raw_batch(spark, settings.features.raw_dir))
    print(
        f"spark JSON parse alone (RAW_TWEET_SCHEMA, noop sink): {seconds:.1f} s "
        f"({cpu:.1f} CPU s, {load_average()})",
        flush=True,
    )
    return seconds, cpu


def _spark_cold_parse(root: Path, tweets: int) -> tuple[float, float]:
    """Spark's floor as the job meets it: in a fresh JVM (a new process, started the way every
    `tweetops features` run starts one), the job's reader, parse and validation of the snapshot
    to a `noop` sink. Wall time and CPU seconds from the session's start on (its start-up not
    counted, as for the run above)."""
    done = subprocess.run(
        [sys.executable, __file__, "--cold-parse", str(root), "--tweets", str(tweets)],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(f"the fresh-JVM parse failed with exit code {done.returncode}: {last}")
    seconds, cpu = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"spark parse and validation alone in a fresh JVM (noop sink): {seconds:.1f} s "
        f"({cpu:.1f} CPU s, {load_average()})",
        flush=True,
    )
    return seconds, cpu


def _cold_parse_child(root: Path, tweets: int) -> None:
    """The child of :func:`_spark_cold_parse`: prints `[seconds, CPU seconds]`."""
    from tweetops.features import read_raw_batch
    from tweetops.features.parse import parse_tweets, valid_tweets

    settings = _settings(root, tweets)
    spark = build_spark(settings.spark)
    valid = valid_tweets(parse_tweets(read_raw_batch(spark, settings.features.raw_dir)))
    print(json.dumps(_to_noop(valid)), flush=True)


def _to_noop(frame: DataFrame) -> tuple[float, float]:
    """Compute every column of `frame` into a `noop` sink: wall time and CPU seconds."""
    started, cpu_before = time.perf_counter(), cpu_seconds()
    frame.write.format("noop").mode("overwrite").save()
    return time.perf_counter() - started, cpu_seconds() - cpu_before


def _micro_batches(settings: Settings) -> list[list[Path]]:
    """The part files as the stream reads them: modification-time order, capped per batch."""
    config = settings.features
    files = sorted(config.raw_dir.glob("*.jsonl"), key=lambda p: (p.stat().st_mtime, p.name))
    step = config.max_files_per_trigger
    return [files[n : n + step] for n in range(0, len(files), step)]


def _oracle(
    settings: Settings,
    spark_seconds: float,
    spark_cpu: float,
    parse: tuple[float, float],
    cold_parse: tuple[float, float],
) -> None:
    """The DuckDB oracle on the same snapshot: its time, and whether Spark's tables equal it."""
    import duckdb

    from tests.support.oracle import build_oracle, compare_with_parquet

    config = settings.features
    con = duckdb.connect()
    started, cpu_before = time.perf_counter(), cpu_seconds()
    counts = build_oracle(
        con,
        _micro_batches(settings),
        watermark=config.watermark,
        activity_window=config.activity_window,
        activity_slide=config.activity_slide,
        flush_at_end=config.flush_at_end,
        label_min_age=config.label_min_age,  # the job's settings, every one of them
    )
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu_before
    differences = [
        compare_with_parquet(con, table, folder)
        for table, folder in (
            ("users", config.users_dir),
            ("training", config.training_rows_dir),
            ("activity", config.user_activity_dir),
        )
    ]
    sizes = ", ".join(
        f"{con.execute(f'SELECT count(*) FROM {name}').fetchone()[0]} {name}"  # type: ignore[index]
        for name in ("users", "training", "activity")
    )
    print(
        f"duckdb oracle (three tables): {seconds:.1f} s ({cpu:.1f} CPU s, {load_average()}), "
        f"{sizes} ({counts.too_young} too young), {counts.accepted} accepted; "
        f"Spark's tables equal the oracle's: {all(d.equal for d in differences)}",
        flush=True,
    )
    for difference in differences:
        if not difference.equal:
            print(f"  differs: {difference}", flush=True)
    print(
        f"ratio Spark (three tables) / DuckDB (three tables): {spark_seconds / seconds:.1f}x "
        f"wall, {spark_cpu / cpu:.1f}x CPU (target at most 4x)",
        flush=True,
    )
    print(
        f"Spark's JSON parse alone, warm JVM / DuckDB three tables: {parse[0] / seconds:.1f}x "
        f"wall, {parse[1] / cpu:.1f}x CPU (a floor of the ratio above, were the JVM warm)",
        flush=True,
    )
    print(
        f"Spark's parse and validation alone, fresh JVM / DuckDB three tables: "
        f"{cold_parse[0] / seconds:.1f}x wall, {cold_parse[1] / cpu:.1f}x CPU (the floor of the "
        f"ratio above as the job runs: before any table is built)",
        flush=True,
    )


class LagTracker:
    """Files appended at known times; each one's lag ends when a committed batch includes it."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.pending: list[tuple[float, int]] = []  # (appended at, tweets up to and with it)
        self.lags: list[float] = []

    def processed(self) -> int:
        """Raw rows the committed micro-batches have read."""
        states = list(self.state_dir.glob("*.json")) if self.state_dir.is_dir() else []
        if not states:
            return 0
        latest = max(states, key=lambda p: int(p.stem))
        return int(json.loads(latest.read_text())["input_rows"])

    def poll(self) -> None:
        """Resolve every pending file a committed batch has read."""
        done, now = self.processed(), time.perf_counter()
        self.lags += [now - at for at, upto in self.pending if upto <= done]
        self.pending = [(at, upto) for at, upto in self.pending if upto > done]


def _tweet_lines(pool_dir: Path) -> Iterator[bytes]:
    """The synthetic snapshot's lines in event-time order (part files are written oldest first)."""
    for part in sorted(pool_dir.glob("*.jsonl")):
        yield from part.read_bytes().splitlines()


def _live_throughput(
    root: Path,
    pool_dir: Path,
    rates: list[int],
    seconds_per_rate: int,
    base_tweets: int,
    pool_tweets: int,
) -> None:
    """Append tweets at rising rates to a live run; the highest rate with p50 lag under 10 s."""
    settings = _settings(root, base_tweets, "features.trigger=continuous")
    config = settings.features
    config.raw_dir.mkdir(parents=True)
    lines = _tweet_lines(pool_dir)
    written = 0

    def append(count: int) -> int:
        nonlocal written
        chunk = list(itertools.islice(lines, count))
        scratch = config.raw_dir / f".part-{written:09d}.jsonl.tmp"
        scratch.write_bytes(b"\n".join(chunk) + b"\n")
        os.replace(scratch, config.raw_dir / f"part-{written:09d}.jsonl")
        written += len(chunk)
        return written

    append(base_tweets)
    spark = build_spark(settings.spark)
    stop = StopRequest()
    batches: list[BatchProgress] = []
    job = threading.Thread(
        target=stream_feature_tables, args=(spark, config, batches.append, stop), daemon=True
    )
    job.start()
    tracker = LagTracker(config.checkpoint_dir / "state")
    best = None
    try:
        while tracker.processed() < base_tweets:
            time.sleep(0.2)
        for rate in rates:
            if written + rate * seconds_per_rate > pool_tweets:
                print(
                    f"live {rate:,} tweets/s: not measured, only {pool_tweets - written:,} of "
                    f"the snapshot's tweets are left (raise --tweets)",
                    flush=True,
                )
                break
            tracker.lags, first_batch = [], len(batches)
            started, cpu_before = time.perf_counter(), cpu_seconds()
            for second in range(seconds_per_rate):
                tracker.pending.append((time.perf_counter(), append(rate)))
                while time.perf_counter() < started + second + 1:
                    tracker.poll()
                    time.sleep(0.05)
            deadline = time.perf_counter() + 120
            while tracker.pending and time.perf_counter() < deadline:
                tracker.poll()
                time.sleep(0.05)
            if tracker.pending or not tracker.lags:
                print(f"live {rate:,} tweets/s: not caught up within 120 s", flush=True)
                break
            cpu_per_second = (cpu_seconds() - cpu_before) / (time.perf_counter() - started)
            p50 = statistics.median(tracker.lags)
            ran = batches[first_batch:]
            phases: dict[str, float] = {}
            for batch in ran:
                for name, phase_seconds in batch.counts.phase_seconds.items():
                    phases[name] = phases.get(name, 0.0) + phase_seconds / len(ran)
            listed = ", ".join(f"{name} {value:.1f} s" for name, value in phases.items())
            mean_batch = statistics.mean(b.duration_ms for b in ran) / 1000 if ran else 0.0
            print(
                f"live {rate:,} tweets/s for {seconds_per_rate} s: lag p50 "
                f"{p50:.1f} s, max {max(tracker.lags):.1f} s; {len(ran)} micro-batches, mean "
                f"{mean_batch:.1f} s ({listed}); history {tracker.processed():,} tweets; "
                f"{cpu_per_second:.2f} CPU s per s (driver and JVM), {load_average()}",
                flush=True,
            )
            if p50 >= 10:
                break
            best = rate
    finally:
        stop.event.set()
        job.join(timeout=600)
    print(
        f"live: highest append rate with p50 lag under 10 s: "
        f"{'none tried' if best is None else f'{best:,} tweets/s'} (target at least 6,000)",
        flush=True,
    )


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
    parser.add_argument("--live-tweets", type=int, default=20_000, help="before the appends")
    parser.add_argument(
        "--live-rates", type=int, nargs="*", default=[2000, 4000, 6000, 8000, 12000, 16000]
    )
    parser.add_argument("--live-seconds", type=int, default=15, help="of appends per rate")
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
    parser.add_argument(
        "--snapshot",
        type=Path,
        help="a finished ingest's tweets folder of --tweets tweets to copy instead of ingesting "
        "(the synthetic tweets are the same for the same sizes and seed)",
    )
    parser.add_argument("--cold-parse", type=Path, help=argparse.SUPPRESS)  # the child's root
    args = parser.parse_args()
    if args.cold_parse:
        _cold_parse_child(args.cold_parse, args.tweets)
        return

    root = Path(tempfile.mkdtemp(prefix="tweetops-bench-features-"))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    os.chdir(root)  # MLflow puts a SQLite store's artifacts under ./mlruns
    try:
        settings = _settings(root, args.tweets)
        started = time.perf_counter()
        if args.snapshot:
            shutil.copytree(args.snapshot.resolve(), settings.features.raw_dir)
        else:
            ingest(settings)
        parts = len(list(settings.features.raw_dir.glob("*.jsonl")))
        print(
            f"\n{args.tweets} synthetic tweets in {parts} part files "
            f"(ingest {time.perf_counter() - started:.0f} s)",
            flush=True,
        )
        build_spark(settings.spark)  # JVM start-up is not the job's cost
        default = _spark_run(settings, "defaults", args.tweets)
        parse = _spark_parse(settings)
        if "duckdb" not in args.skip:
            _oracle(settings, *default, parse, _spark_cold_parse(root, args.tweets))
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
            print(
                f"ratio default sizing / one micro-batch: {default[0] / single[0]:.2f}x", flush=True
            )
        for files in args.sizing_files:
            capped = _spark_run(
                _settings(root, args.tweets, f"features.max_files_per_trigger={files}"),
                f"maxFilesPerTrigger={files}",
                args.tweets,
            )
            print(
                f"ratio maxFilesPerTrigger={files} / defaults: {capped[0] / default[0]:.2f}x",
                flush=True,
            )
        if "live" not in args.skip:
            _live_throughput(
                root / "live",
                settings.features.raw_dir,
                args.live_rates,
                args.live_seconds,
                args.live_tweets,
                args.tweets,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
