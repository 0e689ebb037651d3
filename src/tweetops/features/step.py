"""The features step: run the streaming job (one-shot or live) inside the step's MLflow run."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import mlflow
from pyspark.errors import StreamingQueryException
from pyspark.sql import SparkSession
from pyspark.sql.streaming.query import StreamingQuery

from tweetops.errors import TweetopsError
from tweetops.features.parse import parse_tweets
from tweetops.features.stream import (
    BatchCounts,
    FeatureStream,
    FlushCounts,
    checkpoint_is_complete,
    clear_outputs,
    has_outputs,
    output_folders,
    progress_fields,
)
from tweetops.ingest.snapshot import PART_SUFFIX, part_files
from tweetops.locks import exclusive
from tweetops.markers import clear_marker, mark_complete, require_complete
from tweetops.runner import run_step
from tweetops.schema import CORRUPT_RECORD_COLUMN, RAW_TWEET_SCHEMA
from tweetops.settings import FeaturesSettings, Settings
from tweetops.spark import cluster_storage_error, spark_path

log = logging.getLogger(__name__)
POLL_SECONDS = 0.5
STOP_WAIT_SECONDS = 300


@dataclass(frozen=True)
class BatchProgress:
    """One micro-batch as the query reported it, with what the job did with its rows."""

    counts: BatchCounts
    duration_ms: int

    def line(self) -> str:
        """The one line logged per micro-batch."""
        c = self.counts
        return (
            f"features: batch {c.batch_id}: {c.input_rows} rows in "
            f"{self.duration_ms / 1000:.1f} s -> {c.accepted} accepted, {c.late} late, "
            f"{c.duplicates} duplicate, {c.rejected} rejected; state {c.history_rows} "
            f"history rows; watermark {c.watermark}, {c.waiting} original tweets waiting "
            f"behind it, {c.too_young} too young for a label"
        )

    def metrics(self) -> dict[str, float]:
        """Logged as MLflow metrics of the run with `step = batch id`."""
        c = self.counts
        return {
            "batch_input_rows": c.input_rows,
            "batch_duration_ms": self.duration_ms,
            "batch_accepted": c.accepted,
            "batch_late": c.late,
            "batch_duplicates": c.duplicates,
            "batch_rejected": c.rejected,
            "batch_state_rows": c.history_rows,
            "batch_waiting": c.waiting,
            "batch_too_young": c.too_young,
        }


@dataclass(frozen=True)
class FeaturesResult:
    """Counts and throughput of one features run."""

    input_rows: int
    micro_batches: int
    users: int
    training_rows: int
    activity_rows: int
    late: int
    duplicates: int
    rejected: int
    seconds: float
    rebuilt: bool = False
    waiting: int = 0
    flushed: int = 0
    too_young: int = 0
    flush_seconds: float = 0.0  # wall time of the flush at the end of a one-shot run

    @property
    def rows_per_second(self) -> float:
        """Raw rows read per second of wall time."""
        return self.input_rows / self.seconds if self.seconds > 0 else 0.0

    def logged_metrics(self) -> dict[str, float]:
        """Counts, micro-batches and throughput."""
        return {
            "features_input_rows": self.input_rows,
            "features_micro_batches": self.micro_batches,
            "features_users": self.users,
            "features_training_rows": self.training_rows,
            "features_activity_rows": self.activity_rows,
            "features_late": self.late,
            "features_duplicates": self.duplicates,
            "features_rejected": self.rejected,
            "features_waiting": self.waiting,
            "features_flushed": self.flushed,
            "features_too_young": self.too_young,
            "features_rows_per_second": self.rows_per_second,
        }

    def summary(self) -> str:
        """One line: rows in, micro-batches, tables out, what waits, throughput."""
        return (
            f"features: {self.input_rows} raw rows in {self.micro_batches} micro-batches -> "
            f"{self.users} users, {self.training_rows} training rows ({self.flushed} flushed "
            f"at the end), {self.waiting} original tweets waiting behind the watermark, "
            f"{self.too_young} too young for a label, "
            f"{self.activity_rows} activity windows, {self.late} late, {self.duplicates} "
            f"duplicate, {self.rejected} rejected ({self.rows_per_second:,.0f} rows/s)"
        )


class StopRequest:
    """Set by SIGINT/SIGTERM; the run loop stops the query between micro-batches."""

    def __init__(self) -> None:
        self.event = threading.Event()

    @property
    def requested(self) -> bool:
        """Whether a stop was asked for."""
        return self.event.is_set()


@contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """SIGINT and SIGTERM ask the live query to stop cleanly instead of killing the process."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        request.event.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield request
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def build_features(settings: Settings) -> FeaturesResult:
    """The features step: :func:`stream_feature_tables` in the step's MLflow run.

    Each micro-batch is logged as one line and as MLflow metrics with `step = batch id`.
    """
    config = settings.features

    def on_batch(progress: BatchProgress) -> None:
        log.info(progress.line())
        mlflow.log_metrics(progress.metrics(), step=progress.counts.batch_id)

    # a live run stops cleanly between micro-batches; a one-shot run that is stopped ends KILLED
    # and leaves its tables unmarked, so no later step reads half of them
    live = config.trigger == "continuous"
    with stop_on_signals() if live else nullcontext(None) as stop:
        return run_step(
            settings,
            "features",
            ("features", "spark"),
            lambda run: stream_feature_tables(run.spark, config, on_batch, stop),
            needs_spark=True,
            inputs={"raw_tweets": config.raw_dir},
        )


def prepare_outputs(config: FeaturesSettings) -> bool:
    """Clear or keep earlier outputs; True when a missing checkpoint forces a rebuild."""
    keep = config.incremental or config.trigger == "continuous"
    if not keep:
        clear_outputs(config)
        return False
    if not has_outputs(config) or checkpoint_matches_tables(config):
        return False
    log.warning(
        "features: the checkpoint %s is missing, incomplete or not the one the feature tables "
        "were built with, so the feature tables will be rebuilt from scratch.",
        config.checkpoint_dir,
    )
    clear_outputs(config)
    return True


def checkpoint_matches_tables(config: FeaturesSettings) -> bool:
    """Whether a restart from the checkpoint continues the tables without a tweet read twice.

    The checkpoint must be whole (the query's metadata, its file log when it committed a batch,
    a commit for every batch but the last it planned, the job's state up to its last commit,
    the user state and author carry that state names),
    and every `batch_id` folder of the tables must come from a batch it recorded (or the flush
    after the last). A checkpoint deleted in part, or recreated by a query still running when
    it was deleted, fails this: its query would read the snapshot again and append it.
    """
    if not checkpoint_is_complete(config):
        return False
    query = config.checkpoint_dir / "query"
    offsets = _batch_ids(query / "offsets")
    commits = _batch_ids(query / "commits")
    states = _batch_ids(config.checkpoint_dir / "state")
    last_state = max(states, default=-1)
    if not (query / "metadata").is_file():
        return False
    if offsets and not set(range(max(offsets))) <= commits:
        return False
    if commits and (not _batch_ids(query / "sources" / "0") or last_state < max(commits)):
        return False
    if not _state_folders_exist(config, last_state):
        return False
    written = (
        *(config.checkpoint_dir / name for name in ("history", "users", "carry")),
        *table_folders(config),
    )
    return all(
        int(batch.name.removeprefix("batch_id=")) <= last_state + 1
        for folder in written
        if folder.is_dir()
        for batch in folder.glob("batch_id=*")
        if batch.name.removeprefix("batch_id=").isdigit()
    )


def _state_folders_exist(config: FeaturesSettings, last_state: int) -> bool:
    """Whether the user state and author carry the last committed state names are there."""
    job = FeatureStream(config)
    state = job.state_before(last_state + 1)
    return all(
        number is None or (folder / f"batch_id={number}").is_dir()
        for number, folder in (
            (state.users_batch, job.users_state_dir),
            (state.carry_batch, job.carry_dir),
        )
    )


def _batch_ids(folder: Path) -> set[int]:
    """The batch ids of a checkpoint log (`N`, `N.compact`, `N.json`; not Spark's `.crc` files)."""
    if not folder.is_dir():
        return set()
    return {
        int(stem) for stem in (p.name.split(".")[0] for p in folder.iterdir()) if stem.isdigit()
    }


def stream_feature_tables(
    spark: SparkSession,
    config: FeaturesSettings,
    on_batch: Callable[[BatchProgress], None] = lambda _: None,
    stop: StopRequest | None = None,
) -> FeaturesResult:
    """Run the streaming job: until every file is read (`available_now`) or until stopped.

    One query reads `raw_dir` as a file stream (`maxFilesPerTrigger`, part files only:
    dot-files being written are never read) into :class:`FeatureStream`'s `foreachBatch`.
    `continuous` triggers a micro-batch every `trigger_interval_s` and runs until `stop` is
    requested (SIGINT/SIGTERM); it always keeps its checkpoint, so a restart continues. One job
    at a time works on a checkpoint: a second one waits for the first (:func:`exclusive`).
    """
    with exclusive("features", config.checkpoint_dir):
        return _stream_feature_tables(spark, config, on_batch, stop)


def _stream_feature_tables(
    spark: SparkSession,
    config: FeaturesSettings,
    on_batch: Callable[[BatchProgress], None],
    stop: StopRequest | None,
) -> FeaturesResult:
    live = config.trigger == "continuous"
    if not live and not part_files(config.raw_dir):
        raise TweetopsError(
            f"No tweets found in {config.raw_dir}: run `tweetops ingest` first "
            f"or point features.raw_dir at a snapshot."
        )
    if not live:  # a live run follows sealed part files as an ingest appends them
        require_complete(config.raw_dir, produced_by="ingest")
    config.raw_dir.mkdir(parents=True, exist_ok=True)
    tables = table_folders(config)
    for folder in tables:  # readers refuse the tables until this run finished them
        clear_marker(folder)
    rebuilt = prepare_outputs(config)
    job = FeatureStream(config)
    job.remove_flush()
    started = time.perf_counter()
    query = _start(spark, config, job)
    reported: set[int] = set()
    stopping = False
    while True:
        finished = _await(query, config, str(spark.sparkContext.master))
        _report(query, job, reported, on_batch)
        if finished or not query.isActive:
            break
        if stop is not None and stop.requested and not stopping:
            stopping = True
            _stop_between_batches(query)
    _report(query, job, reported, on_batch)
    for folder in output_folders(config):  # an empty table is a folder, e.g. for DVC's outs
        folder.mkdir(parents=True, exist_ok=True)
    state = job.state_before(1 << 62)
    flush_started = time.perf_counter()
    flushed = job.flush(spark) if not live and config.flush_at_end else FlushCounts(0, 0)
    flush_seconds = time.perf_counter() - flush_started
    ran = [job.counts[i] for i in sorted(reported)]
    result = FeaturesResult(
        input_rows=sum(c.input_rows for c in ran),
        micro_batches=len(ran),
        users=_count_parquet(spark, config.users_dir),
        training_rows=_count_parquet(spark, config.training_rows_dir),
        activity_rows=_count_parquet(spark, config.user_activity_dir),
        late=state.late,
        duplicates=state.duplicates,
        rejected=state.rejected,
        seconds=time.perf_counter() - started,
        rebuilt=rebuilt,
        waiting=state.waiting - flushed.training_rows - flushed.too_young,
        flushed=flushed.training_rows,
        too_young=state.too_young + flushed.too_young,
        flush_seconds=flush_seconds,
    )
    counts = {
        "training_rows": result.training_rows,
        "users": result.users,
        "activity_rows": result.activity_rows,
        "late": result.late,
        "rejected": result.rejected,
        "waiting": result.waiting,
        "flushed": result.flushed,
        "too_young": result.too_young,
    }
    for folder in tables:
        mark_complete(folder, "features", counts)
    return result


def table_folders(config: FeaturesSettings) -> tuple[Path, ...]:
    """The tables the job writes (its checkpoint aside): each carries a completion marker."""
    return tuple(folder for folder in output_folders(config) if folder != config.checkpoint_dir)


def _start(spark: SparkSession, config: FeaturesSettings, job: FeatureStream) -> StreamingQuery:
    stream = (
        spark.readStream.schema(RAW_TWEET_SCHEMA)
        .option("maxFilesPerTrigger", config.max_files_per_trigger)
        .option("pathGlobFilter", f"*{PART_SUFFIX}")
        .option("columnNameOfCorruptRecord", CORRUPT_RECORD_COLUMN)
        .json(spark_path(config.raw_dir))
    )
    writer = (
        parse_tweets(stream, max_clock_skew=config.max_clock_skew)
        .writeStream.queryName("features")
        .foreachBatch(job.process)
        .option("checkpointLocation", spark_path(config.checkpoint_dir / "query"))
    )
    if config.trigger == "continuous":
        writer = writer.trigger(processingTime=f"{config.trigger_interval_s} seconds")
    else:
        writer = writer.trigger(availableNow=True)
    return writer.start()


def _await(query: StreamingQuery, config: FeaturesSettings, master: str) -> bool:
    """Wait for the query up to POLL_SECONDS; a checkpoint deleted under it, or data the
    executors of a cluster cannot see, is one sentence."""
    try:
        # PySpark's hint says int, but it takes any number of seconds (it sends int(s * 1000))
        return bool(query.awaitTermination(POLL_SECONDS))  # type: ignore[arg-type]
    except StreamingQueryException as exc:
        unseen = cluster_storage_error(exc, master)
        if unseen is not None:
            raise unseen from None
        if checkpoint_is_complete(config):
            raise
        raise TweetopsError(
            f"The checkpoint {config.checkpoint_dir} was deleted while features ran, so the "
            f"query stopped: run `tweetops features` again and it rebuilds the feature tables "
            f"from scratch."
        ) from None


def _stop_between_batches(query: StreamingQuery) -> None:
    # let a running micro-batch finish so its outputs and commit land together; a batch cut
    # short anyway is replayed on restart and overwrites its own batch_id folders
    deadline = time.monotonic() + STOP_WAIT_SECONDS
    while query.status.get("isTriggerActive") and time.monotonic() < deadline:
        time.sleep(0.1)
    query.stop()


def _report(
    query: StreamingQuery,
    job: FeatureStream,
    reported: set[int],
    on_batch: Callable[[BatchProgress], None],
) -> None:
    for progress in query.recentProgress:
        batch_id, _rows, duration_ms = progress_fields(progress)
        if (
            batch_id in job.counts
            and batch_id not in reported
            and duration_ms > 0
            and "addBatch" in (progress.get("durationMs") or {})
        ):
            reported.add(batch_id)
            on_batch(BatchProgress(job.counts[batch_id], duration_ms))


def _count_parquet(spark: SparkSession, folder: Path) -> int:
    if not folder.exists() or not any(folder.rglob("*.parquet")):
        return 0
    return spark.read.parquet(spark_path(folder)).count()
