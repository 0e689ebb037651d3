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
7. the batch's watermark and counts are committed to `checkpoint_dir/state/N.json`.

Every write of batch `N` overwrites its own `batch_id=N` output and reads only state from
batches before it, so a batch replayed after a crash or a stop gives the same tables.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from tweetops.features.parse import rejected_rows, valid_tweets
from tweetops.features.tables import (
    EVENT_MS,
    author_history,
    closed_rows,
    closed_windows,
    duration_ms,
    training_rows,
    user_activity,
    user_features,
    with_event_ms,
)
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


def _iso(ms: int | None) -> str | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat()


class FeatureStream:
    """The state and the `foreachBatch` function of the streaming job."""

    def __init__(self, config: FeaturesSettings) -> None:
        self.config = config
        self.delay_ms = duration_ms(config.watermark)
        self.window_ms = duration_ms(config.activity_window)
        self.history_dir = config.checkpoint_dir / "history"
        self.state_dir = config.checkpoint_dir / "state"
        self.counts: dict[int, BatchCounts] = {}

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
        return (
            spark.read.parquet(spark_path(self.history_dir))
            .where(F.col("batch_id") <= up_to)
            .drop("batch_id")
        )

    # -- one micro-batch ---------------------------------------------------------------
    def process(self, batch: DataFrame, batch_id: int) -> None:
        """`foreachBatch`: route, deduplicate, extend the history, emit what has closed."""
        spark = batch.sparkSession
        before = self.state_before(batch_id)
        config = self.config
        batch.persist()
        try:
            valid = with_event_ms(valid_tweets(batch))
            is_late = (
                F.lit(False)
                if before.closed_ms is None
                else F.unix_millis("created_at") < before.closed_ms
            )
            # one pass over the cached batch for every count
            input_rows, rejected_count, late_count = batch.select(
                F.count(F.lit(1)),
                F.count("reject_reason"),
                F.count(F.when(F.col("reject_reason").isNull() & is_late, 1)),
            ).collect()[0]
            if rejected_count:
                _write(rejected_rows(batch), config.rejected_dir, batch_id)
            on_time = valid
            if late_count and before.closed_ms is not None:  # no late row before a watermark
                late = valid.where(F.col(EVENT_MS) < before.closed_ms)
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
            if before.closed_ms is not None:
                on_time = valid.where(F.col(EVENT_MS) >= before.closed_ms)
            on_time = on_time.dropDuplicates(["tweet_id"])
            history = self._history(spark, batch_id - 1)
            if history is not None and before.closed_ms is not None:
                inside = history.where(F.col(EVENT_MS) >= before.closed_ms - self.delay_ms)
                on_time = on_time.join(inside.select("tweet_id"), "tweet_id", "left_anti")
            _write(on_time, self.history_dir, batch_id)
            fresh = spark.read.parquet(spark_path(self.history_dir / f"batch_id={batch_id}"))
            accepted, fresh_max = fresh.agg(F.count(F.lit(1)), F.max(EVENT_MS)).collect()[0]
            candidates = [ms for ms in (before.max_event_ms, fresh_max) if ms is not None]
            max_ms = max(candidates) if candidates else None
            closed_ms = None if max_ms is None else max_ms - self.delay_ms
            everything = self._history(spark, batch_id)
            if everything is not None:
                # read by the training rows, the windows and the user table: decode it once
                everything = everything.persist()
                try:
                    self._emit(everything, batch_id, before.closed_ms, closed_ms)
                    user_features(everything).write.mode("overwrite").parquet(
                        spark_path(config.users_dir)
                    )
                finally:
                    everything.unpersist()
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
            )
        finally:
            batch.unpersist()

    def _emit(
        self, history: DataFrame, batch_id: int, after_ms: int | None, until_ms: int | None
    ) -> None:
        """Training rows and activity windows closed by this batch's watermark."""
        if until_ms is None or (after_ms is not None and until_ms <= after_ms):
            return
        config = self.config
        if after_ms is None:
            with_history = author_history(history)
        else:  # only authors with a tweet closing now; their whole history
            authors = closed_rows(history, after_ms, until_ms).select("user_id").distinct()
            with_history = author_history(history.join(authors, "user_id", "left_semi"))
        _write(
            training_rows(closed_rows(with_history, after_ms, until_ms)),
            config.training_rows_dir,
            batch_id,
        )
        recent = (
            history
            if after_ms is None
            else history.where(F.col(EVENT_MS) >= after_ms - self.window_ms)
        )
        activity = user_activity(recent, config.activity_window, config.activity_slide)
        _write(closed_windows(activity, after_ms, until_ms), config.user_activity_dir, batch_id)


def _write(frame: DataFrame, folder: Path, batch_id: int) -> None:
    frame.write.mode("overwrite").parquet(spark_path(folder / f"batch_id={batch_id}"))


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
