"""The streaming job: one file-stream query whose `foreachBatch` maintains every table.

Event time is `created_at`. The watermark is Spark's: the latest event time seen in earlier
micro-batches minus `features.watermark`. Per micro-batch `N`:

1. lines that are not tweets go to `rejected_dir/batch_id=N` with the reason;
2. tweets older than the watermark go to `late_dir/batch_id=N` with their lateness (counted,
   never silently dropped);
3. duplicate tweet ids within the watermark are dropped (against this batch and the history
   still inside the watermark), as `dropDuplicatesWithinWatermark` would;
4. the rest is appended to the author history (`checkpoint_dir/history/batch_id=N`), the state
   every later batch reads;
5. once the watermark has passed them, original tweets become training rows (with the author's
   point-in-time history, from every earlier batch) and windows close into `user_activity`;
   both are appended in `batch_id=N` folders;
6. the user table is rebuilt from the history;
7. the batch's watermark and counts (the original tweets still waiting behind the watermark
   among them) are committed to `checkpoint_dir/state/N.json`.

The raw batch is parsed once, by the history write: its counts (rows, rejected, late) are
observed metrics of that write, not a pass of their own, and rejected or late lines are read
again only when there are some. The history is the job's own state, written as it comes (no
byte-stable rewrite) and read back with the parsed schema (no footer inference; a column an
older checkpoint lacks reads as null). It is shuffled by author once per batch and cached: the
author-history window, the activity windows and the user table all partition by `user_id`, so
none shuffles again; a table with nothing closing is not written. At the end of a one-shot run,
:meth:`FeatureStream.flush` emits what still waits (`features.flush_at_end`), windowing only the
histories of the authors who wait.

Every write of batch `N` overwrites its own `batch_id=N` output and reads only state from
batches before it, so a batch replayed after a crash or a stop gives the same tables.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from pyspark.sql import DataFrame, Observation, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import IntegerType, StructField, StructType

from tweetops.features.parquet import write_stable
from tweetops.features.parse import parse_tweets, rejected_rows, valid_tweets
from tweetops.features.tables import (
    EVENT_MS,
    author_history,
    closed_rows,
    closed_windows,
    duration_ms,
    too_young,
    training_rows,
    user_activity,
    user_features,
    with_event_ms,
)
from tweetops.schema import RAW_TWEET_SCHEMA
from tweetops.settings import FeaturesSettings
from tweetops.spark import spark_path


@dataclass(frozen=True)
class BatchState:
    """What batch `batch_id` committed: the event-time watermark and running counts."""

    batch_id: int
    max_event_ms: int | None
    closed_ms: int | None
    history_rows: int
    input_rows: int
    late: int
    duplicates: int
    rejected: int
    waiting: int = 0  # original tweets accepted, not yet training rows (behind the watermark)
    too_young: int = 0  # original tweets past the watermark left out by features.label_min_age


class FlushCounts(NamedTuple):
    """What the flush at the end of a one-shot run wrote and left out."""

    training_rows: int
    too_young: int


BATCH_ID_FIELD = StructField("batch_id", IntegerType())
EMPTY_STATE = BatchState(-1, None, None, 0, 0, 0, 0, 0)


@dataclass(frozen=True)
class BatchCounts:
    """What one micro-batch did."""

    batch_id: int
    input_rows: int
    accepted: int
    late: int
    duplicates: int
    rejected: int
    history_rows: int
    watermark: str | None
    waiting: int
    too_young: int
    phase_seconds: dict[str, float] = field(default_factory=dict)


def _iso(ms: int | None) -> str | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat()


class FeatureStream:
    """The state and the `foreachBatch` function of the streaming job."""

    def __init__(self, config: FeaturesSettings) -> None:
        self.config = config
        self.delay_ms = duration_ms(config.watermark)
        self.window_ms = duration_ms(config.activity_window)
        self.min_age_ms = duration_ms(config.label_min_age) if config.label_min_age else None
        self.history_dir = config.checkpoint_dir / "history"
        self.state_dir = config.checkpoint_dir / "state"
        self.flush_file = config.checkpoint_dir / "flush.json"
        self.counts: dict[int, BatchCounts] = {}
        self._phases: dict[str, float] = {}
        self._schema: StructType | None = None

    @contextmanager
    def _phase(self, name: str) -> Iterator[None]:
        """Add the wall time of the block to this batch's `phase_seconds[name]`."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self._phases[name] = self._phases.get(name, 0.0) + time.perf_counter() - started

    # -- state -------------------------------------------------------------------------
    def state_before(self, batch_id: int) -> BatchState:
        """The state committed by the latest batch before `batch_id`."""
        ids = (
            [int(p.stem) for p in self.state_dir.glob("*.json")] if self.state_dir.is_dir() else []
        )
        earlier = [i for i in ids if i < batch_id]
        if not earlier:
            return EMPTY_STATE
        data = json.loads((self.state_dir / f"{max(earlier)}.json").read_text())
        return BatchState(**data)

    def _commit(self, state: BatchState) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        final = self.state_dir / f"{state.batch_id}.json"
        scratch = self.state_dir / f".{state.batch_id}.json.tmp"
        scratch.write_text(json.dumps(state.__dict__))
        os.replace(scratch, final)

    def _history(self, spark: SparkSession, up_to: int) -> DataFrame | None:
        folders = (
            [p for p in self.history_dir.glob("batch_id=*") if int(p.name.split("=")[1]) <= up_to]
            if self.history_dir.is_dir()
            else []
        )
        if not folders:
            return None
        partitioned = StructType([*self._history_schema(spark).fields, BATCH_ID_FIELD])
        return (
            spark.read.schema(partitioned)
            .parquet(spark_path(self.history_dir))
            .where(F.col("batch_id") <= up_to)
            .drop("batch_id")
        )

    def _history_schema(self, spark: SparkSession) -> StructType:
        """The history's columns: each valid tweet with its event time, as parsed now.

        Read with this schema, not the files' own: no footer is read to infer it, and a column
        an older checkpoint lacks (`fetched_at`, before ingest recorded it) reads as null.
        """
        if self._schema is None:
            empty = spark.createDataFrame([], RAW_TWEET_SCHEMA)
            self._schema = with_event_ms(valid_tweets(parse_tweets(empty))).schema
        return self._schema

    # -- one micro-batch ---------------------------------------------------------------
    def process(self, batch: DataFrame, batch_id: int) -> None:
        """`foreachBatch`: route, deduplicate, extend the history, emit what has closed."""
        spark = batch.sparkSession
        before = self.state_before(batch_id)
        config = self.config
        self._phases = {}
        is_late = (
            F.lit(False)
            if before.closed_ms is None
            else F.unix_millis("created_at") < before.closed_ms
        )
        # the counts ride along the history write (observed metrics): no pass of their own
        read = Observation(f"features-read-{batch_id}")
        observed = batch.observe(
            read,
            F.count(F.lit(1)).alias("input_rows"),
            F.count("reject_reason").alias("rejected"),
            F.count(F.when(F.col("reject_reason").isNull() & is_late, 1)).alias("late"),
        )
        valid = with_event_ms(valid_tweets(observed))
        on_time = valid if before.closed_ms is None else valid.where(~is_late)
        on_time = on_time.dropDuplicates(["tweet_id"])
        history = self._history(spark, batch_id - 1)
        if history is not None and before.closed_ms is not None:
            inside = history.where(F.col(EVENT_MS) >= before.closed_ms - self.delay_ms)
            on_time = on_time.join(inside.select("tweet_id"), "tweet_id", "left_anti")
        with self._phase("read and history append"):
            fresh_folder = self.history_dir / f"batch_id={batch_id}"
            # the history is the job's own state, not a DVC output: no byte-stable rewrite
            on_time.write.mode("overwrite").parquet(spark_path(fresh_folder))
            input_rows, rejected_count, late_count = (
                int(read.get[name]) for name in ("input_rows", "rejected", "late")
            )
            fresh = spark.read.schema(self._history_schema(spark)).parquet(spark_path(fresh_folder))
            accepted, fresh_max = _first(fresh.agg(F.count(F.lit(1)), F.max(EVENT_MS)))
            if not accepted:  # no history folder for nothing
                shutil.rmtree(fresh_folder, ignore_errors=True)
        if rejected_count:  # reads the batch again: only when there is something to say
            with self._phase("rejected"):
                _write(rejected_rows(batch), config.rejected_dir, batch_id)
        if late_count and before.closed_ms is not None:
            with self._phase("late"):
                late = with_event_ms(valid_tweets(batch)).where(is_late)
                _write(
                    late.select(
                        F.lit(_iso(before.closed_ms)).cast("timestamp").alias("watermark"),
                        ((F.lit(before.closed_ms) - F.col(EVENT_MS)) / 1000.0).alias(
                            "lateness_seconds"
                        ),
                        *(c for c in valid.columns if c != EVENT_MS),
                    ),
                    config.late_dir,
                    batch_id,
                )
        candidates = [ms for ms in (before.max_event_ms, fresh_max) if ms is not None]
        max_ms = max(candidates) if candidates else None
        closed_ms = None if max_ms is None else max_ms - self.delay_ms
        waiting, too_young_now = before.waiting, 0
        everything = self._history(spark, batch_id) if accepted else None
        if everything is not None:
            # one shuffle by author feeds the history window, the windows and the user
            # table (each partitions by user_id), decoded once
            by_author = everything.repartition("user_id").persist()
            try:
                waiting, too_young_now = self._emit(
                    by_author, batch_id, before.closed_ms, closed_ms
                )
                with self._phase("users"):
                    write_stable(user_features(by_author), config.users_dir)
            finally:
                by_author.unpersist()
        duplicates = input_rows - rejected_count - late_count - accepted
        state = BatchState(
            batch_id=batch_id,
            max_event_ms=max_ms,
            closed_ms=closed_ms,
            history_rows=before.history_rows + accepted,
            input_rows=before.input_rows + input_rows,
            late=before.late + late_count,
            duplicates=before.duplicates + duplicates,
            rejected=before.rejected + rejected_count,
            waiting=waiting,
            too_young=before.too_young + too_young_now,
        )
        self._commit(state)
        self.counts[batch_id] = BatchCounts(
            batch_id,
            input_rows,
            accepted,
            late_count,
            duplicates,
            rejected_count,
            state.history_rows,
            _iso(closed_ms),
            waiting,
            too_young_now,
            dict(self._phases),
        )

    def _emit(
        self, history: DataFrame, batch_id: int, after_ms: int | None, until_ms: int | None
    ) -> tuple[int, int]:
        """Write the training rows and activity windows closed by this batch's watermark.

        Returns the original tweets still waiting behind it and those closing now that are too
        young for a label (`features.label_min_age`). Nothing closing, nothing written.
        """
        original = ~F.col("is_retweet")
        advanced = until_ms is not None and (after_ms is None or until_ms > after_ms)
        since = F.lit(advanced) if after_ms is None else F.col(EVENT_MS) >= after_ms
        until = F.lit(False) if until_ms is None else F.col(EVENT_MS) < until_ms
        window_since = (
            F.lit(advanced)
            if after_ms is None or not advanced
            else F.col(EVENT_MS) >= after_ms - self.window_ms
        )
        closing = since & until & original
        with self._phase("count closing"):
            labelled, young, windows_closing, waiting = _first(
                history.select(
                    F.count(F.when(closing & ~too_young(self.min_age_ms), 1)),
                    F.count(F.when(closing & too_young(self.min_age_ms), 1)),
                    F.count(F.when(window_since & until, 1)),
                    F.count(F.when(~until & original, 1)),
                )
            )
        if until_ms is None:
            return int(waiting), 0
        if labelled:
            with self._phase("training rows"):
                self._write_training(history, batch_id, after_ms, until_ms)
        if windows_closing:
            with self._phase("activity"):
                self._write_activity(history, batch_id, after_ms, until_ms)
        return int(waiting), int(young)

    def _write_training(
        self, history: DataFrame, batch_id: int, after_ms: int | None, until_ms: int
    ) -> None:
        if after_ms is None:
            with_history = author_history(history)
        else:  # only authors with a tweet closing now; their whole history
            authors = closed_rows(history, after_ms, until_ms).select("user_id").distinct()
            with_history = author_history(history.join(authors, "user_id", "left_semi"))
        _write(
            training_rows(closed_rows(with_history, after_ms, until_ms), self.min_age_ms),
            self.config.training_rows_dir,
            batch_id,
        )

    def _write_activity(
        self, history: DataFrame, batch_id: int, after_ms: int | None, until_ms: int
    ) -> None:
        config = self.config
        recent = (
            history
            if after_ms is None
            else history.where(F.col(EVENT_MS) >= after_ms - self.window_ms)
        )
        activity = user_activity(recent, config.activity_window, config.activity_slide)
        _write(closed_windows(activity, after_ms, until_ms), config.user_activity_dir, batch_id)

    # -- the end of a one-shot run -----------------------------------------------------
    def flush(self, spark: SparkSession) -> FlushCounts:
        """Emit what waits behind the final watermark as if the watermark had passed it all.

        For a finished snapshot: training rows (with the history they would have had: every
        later tweet is already in) and every window still open, written under the next batch
        id and noted in `checkpoint_dir/flush.json`, which the next run removes first (see
        :meth:`remove_flush`), so its micro-batches emit them again in their own time.
        Returns the training rows flushed and the waiting tweets too young for one.
        """
        state = self.state_before(1 << 62)
        everything = self._history(spark, state.batch_id)
        if everything is None or state.closed_ms is None:
            return FlushCounts(0, 0)
        batch_id = state.batch_id + 1
        self._note_flush(batch_id)
        # no shuffle of the whole history: what waits is its last stretch (the scans skip the
        # rest by event time), and only its authors' histories are windowed
        behind = everything.where((F.col(EVENT_MS) >= state.closed_ms) & ~F.col("is_retweet"))
        young = (
            0
            if self.min_age_ms is None
            else int(_first(behind.select(F.count(F.when(too_young(self.min_age_ms), 1))))[0])
        )
        if state.waiting > young:
            self._write_training(everything, batch_id, state.closed_ms, 1 << 62)
        self._write_activity(everything, batch_id, state.closed_ms, 1 << 62)
        return FlushCounts(state.waiting - young, young)

    def _note_flush(self, batch_id: int) -> None:
        self.config.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        scratch = self.flush_file.with_name(".flush.json.tmp")
        scratch.write_text(json.dumps({"batch_id": batch_id}))
        os.replace(scratch, self.flush_file)

    def remove_flush(self) -> None:
        """Remove the rows an earlier one-shot run flushed: this run emits them in time."""
        if not self.flush_file.is_file():
            return
        batch_id = json.loads(self.flush_file.read_text())["batch_id"]
        for table in (self.config.training_rows_dir, self.config.user_activity_dir):
            shutil.rmtree(table / f"batch_id={batch_id}", ignore_errors=True)
        self.flush_file.unlink()


def _first(frame: DataFrame) -> Row:
    """The one row of an aggregate."""
    row = frame.first()
    assert row is not None, "an aggregate without groups has one row"
    return row


def _write(frame: DataFrame, folder: Path, batch_id: int) -> None:
    write_stable(frame, folder / f"batch_id={batch_id}")


def output_folders(config: FeaturesSettings) -> tuple[Path, ...]:
    """Every folder the job writes, its checkpoint included."""
    return (
        config.users_dir,
        config.training_rows_dir,
        config.user_activity_dir,
        config.late_dir,
        config.rejected_dir,
        config.checkpoint_dir,
    )


def checkpoint_is_complete(config: FeaturesSettings) -> bool:
    """Whether the query's checkpoint and the job's state are both there."""
    return (config.checkpoint_dir / "query" / "offsets").is_dir() and (
        config.checkpoint_dir / "state"
    ).is_dir()


def clear_outputs(config: FeaturesSettings) -> None:
    """Remove every table and the checkpoint: the next run starts from scratch."""
    for folder in output_folders(config):
        shutil.rmtree(folder, ignore_errors=True)


def has_outputs(config: FeaturesSettings) -> bool:
    """Whether any table or checkpoint of an earlier run is on disk."""
    return any(folder.exists() and any(folder.iterdir()) for folder in output_folders(config))


def progress_fields(progress: dict[str, Any]) -> tuple[int, int, int]:
    """`(batch id, input rows, batch duration in ms)` of a StreamingQueryProgress."""
    return (
        int(progress.get("batchId", -1)),
        int(progress.get("numInputRows", 0) or 0),
        int(progress.get("batchDuration", 0) or 0),
    )
