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
6. the batch's tweets are merged into the user state (`checkpoint_dir/users/batch_id=N`: per
   user counts, sums, first time and latest profile, which merge by addition) and the user
   table is rewritten from it;
7. the batch's watermark, counts (the original tweets still waiting behind the watermark among
   them), each history folder's event-time range and the state folders it uses are committed
   to `checkpoint_dir/state/N.json`.

The work of a batch grows with the batch and the recent stretch of event time, not with the
whole history. The raw batch is parsed once, by the history write: its counts (rows, rejected,
late, accepted and the event-time range) are observed metrics of that write, not a pass of
their own, and rejected or late lines are read again only when there are some. The history is
the job's own state, written as it comes (no byte-stable rewrite) and read back with the parsed
schema (no footer inference; a column an older checkpoint lacks reads as null), and only the
folders whose recorded event-time range reaches the stretch a read needs are listed and read
(a folder an older checkpoint did not record always is):

- duplicates: the tweets inside the watermark;
- what closes, what waits and the activity windows: the tweets at or after the previous
  watermark minus one activity window (the counts are observed metrics of the activity write);
- training rows: the 24 h / 7 d windows over the last 7 days before the previous watermark,
  plus the author carry (`checkpoint_dir/carry/batch_id=N`: per author, the original tweets,
  their `log1p` engagement sum and the latest event time of every history tweet older than
  that), which moves forward with the watermark. A tweet is accepted only at or after the
  watermark, so no tweet ever lands behind a carry already written. The mean engagement sums
  the carried and the windowed sums, so it can differ from a sum over the whole history in
  the last bits of a double (the tests compare doubles to 1e-9, as everywhere).

A table with nothing closing is not written. At the end of a one-shot run,
:meth:`FeatureStream.flush` emits what still waits (`features.flush_at_end`), reading only
the history's last stretch and the carry, and of those only the waiting tweets' authors.

Every write of batch `N` overwrites its own `batch_id=N` output and reads only state from
batches before it, so a batch replayed after a crash or a stop gives the same tables. The user
state and carry folders a batch killed half-way wrote are named by no committed state: the
replay overwrites them, and folders no longer named by the last two states are removed. A
checkpoint whose named user state or carry is missing is rebuilt from scratch
(:func:`~tweetops.features.step.checkpoint_matches_tables`).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from pyspark.sql import DataFrame, Observation, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from tweetops.features.parquet import write_stable
from tweetops.features.parse import parse_tweets, rejected_rows, valid_tweets
from tweetops.features.tables import (
    EVENT_MS,
    HISTORY_HORIZON_MS,
    author_carry,
    author_history,
    closed_rows,
    closed_windows,
    duration_ms,
    merge_carry,
    too_young,
    training_rows,
    user_activity,
    user_state,
    users_from_state,
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
    # each history folder's event-time range, "batch id" -> [min, max] (a folder an older
    # checkpoint did not record is always read)
    history_ranges: dict[str, list[int]] = field(default_factory=dict)
    users_batch: int | None = None  # the users/batch_id=N folder holding the user state
    carry_batch: int | None = None  # the carry/batch_id=N folder holding the author carry
    carry_ms: int | None = None  # the carry holds every history tweet before this event time


class FlushCounts(NamedTuple):
    """What the flush at the end of a one-shot run wrote and left out."""

    training_rows: int
    too_young: int


# the tables' unique keys: each places and orders its rows in the byte-stable files (the
# late and rejected rows have none and are ordered by every column)
TRAINING_KEY = ("tweet_id",)  # deduplicated by id
ACTIVITY_KEY = ("user_id", "window_start", "window_end")  # one row per user and window
USERS_KEY = ("user_id",)

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
        self.users_state_dir = config.checkpoint_dir / "users"
        self.carry_dir = config.checkpoint_dir / "carry"
        self.state_dir = config.checkpoint_dir / "state"
        self.flush_file = config.checkpoint_dir / "flush.json"
        self.counts: dict[int, BatchCounts] = {}
        self._phases: dict[str, float] = {}
        self._nested: list[float] = []
        self._schema: StructType | None = None

    @contextmanager
    def _phase(self, name: str) -> Iterator[None]:
        """Add the wall time of the block to this batch's `phase_seconds[name]` (less the
        phases nested in it, which count for themselves)."""
        started = time.perf_counter()
        self._nested.append(0.0)
        try:
            yield
        finally:
            spent = time.perf_counter() - started
            inner = self._nested.pop()
            self._phases[name] = self._phases.get(name, 0.0) + spent - inner
            if self._nested:
                self._nested[-1] += spent

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

    def _history(
        self,
        spark: SparkSession,
        up_to: int,
        since_ms: int | None = None,
        ranges: dict[str, list[int]] | None = None,
        before_ms: int | None = None,
    ) -> DataFrame | None:
        """The history of batches up to `up_to`: its tweets in `[since_ms, before_ms)` (either
        bound optional). Only the folders whose recorded event-time range (`ranges`) meets
        that stretch are read; a folder with no recorded range always is."""
        known = ranges or {}
        folders = []
        for path in self.history_dir.glob("batch_id=*") if self.history_dir.is_dir() else []:
            number = path.name.removeprefix("batch_id=")
            if not number.isdigit() or int(number) > up_to:
                continue
            low, high = known.get(number, (None, None))
            if high is not None and since_ms is not None and high < since_ms:
                continue
            if low is not None and before_ms is not None and low >= before_ms:
                continue
            folders.append(path)
        if not folders:
            return None
        schema = self._history_schema(spark)
        history = spark.read.schema(schema).parquet(*(spark_path(p) for p in sorted(folders)))
        if since_ms is not None:
            history = history.where(F.col(EVENT_MS) >= since_ms)
        return history if before_ms is None else history.where(F.col(EVENT_MS) < before_ms)

    def _read_state(self, spark: SparkSession, folder: Path, like: DataFrame) -> DataFrame:
        """A state folder the job wrote, read with the schema of `like` (no footer inference)."""
        return spark.read.schema(like.schema).parquet(spark_path(folder))

    def _empty_history(self, spark: SparkSession) -> DataFrame:
        return spark.createDataFrame([], self._history_schema(spark))

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
        if before.closed_ms is not None:  # only the folders inside the watermark are read
            inside = self._history(
                spark, batch_id - 1, before.closed_ms - self.delay_ms, before.history_ranges
            )
            if inside is not None:
                on_time = on_time.join(inside.select("tweet_id"), "tweet_id", "left_anti")
        accepted_now = Observation(f"features-accepted-{batch_id}")
        on_time = on_time.observe(
            accepted_now,
            F.count(F.lit(1)).alias("accepted"),
            F.min(EVENT_MS).alias("min_ms"),
            F.max(EVENT_MS).alias("max_ms"),
        )
        with self._phase("read and history append"):
            fresh_folder = self.history_dir / f"batch_id={batch_id}"
            # the history is the job's own state, not a DVC output: no byte-stable rewrite
            on_time.write.mode("overwrite").parquet(spark_path(fresh_folder))
            input_rows, rejected_count, late_count = (
                int(read.get[name]) for name in ("input_rows", "rejected", "late")
            )
            accepted = int(accepted_now.get["accepted"])
            fresh_min, fresh_max = accepted_now.get["min_ms"], accepted_now.get["max_ms"]
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
        ranges = dict(before.history_ranges)
        if accepted:
            ranges[str(batch_id)] = [int(fresh_min), int(fresh_max)]
        state = BatchState(
            batch_id=batch_id,
            max_event_ms=max_ms,
            closed_ms=closed_ms,
            history_rows=before.history_rows + accepted,
            input_rows=before.input_rows + input_rows,
            late=before.late + late_count,
            duplicates=before.duplicates + input_rows - rejected_count - late_count - accepted,
            rejected=before.rejected + rejected_count,
            waiting=before.waiting,
            too_young=before.too_young,
            history_ranges=ranges,
            users_batch=before.users_batch,
            carry_batch=before.carry_batch,
            carry_ms=before.carry_ms,
        )
        too_young_now = 0
        if accepted:
            state, too_young_now = self._emit(spark, before, state)
            state = self._write_users(spark, before, state)
        self._commit(state)
        self._drop_unreferenced(before, state)
        self.counts[batch_id] = BatchCounts(
            batch_id,
            input_rows,
            accepted,
            late_count,
            state.duplicates - before.duplicates,
            rejected_count,
            state.history_rows,
            _iso(closed_ms),
            state.waiting,
            too_young_now,
            dict(self._phases),
        )

    def _emit(
        self, spark: SparkSession, before: BatchState, state: BatchState
    ) -> tuple[BatchState, int]:
        """Write the training rows and activity windows closed by this batch's watermark.

        Returns the state with the original tweets still waiting behind it (and the carry the
        training rows used), and those closing now that are too young for a label
        (`features.label_min_age`). Nothing closing, nothing written. Only the recent stretch
        of the history is read: what closes, what waits and the windows it closes are all at or
        after the previous watermark minus one activity window. The counts are observed
        metrics of the activity write, not a pass of their own.
        """
        batch_id, after_ms, until_ms = state.batch_id, before.closed_ms, state.closed_ms
        since = None if after_ms is None else after_ms - self.window_ms
        recent = self._history(spark, batch_id, since, state.history_ranges)
        if recent is None:
            return state, 0
        original = ~F.col("is_retweet")
        if until_ms is None or (after_ms is not None and until_ms <= after_ms):
            behind = original if until_ms is None else original & (F.col(EVENT_MS) >= until_ms)
            with self._phase("count waiting"):  # the watermark did not move: nothing closes
                waiting = _first(recent.select(F.count(F.when(behind, 1))))[0]
            return replace(state, waiting=int(waiting)), 0
        closing = F.col(EVENT_MS) < until_ms
        if after_ms is not None:
            closing = closing & (F.col(EVENT_MS) >= after_ms)
        closing = closing & original
        counts = Observation(f"features-closing-{batch_id}")
        observed = recent.observe(
            counts,
            F.count(F.when(closing & ~too_young(self.min_age_ms), 1)).alias("labelled"),
            F.count(F.when(closing & too_young(self.min_age_ms), 1)).alias("young"),
            F.count(F.when((F.col(EVENT_MS) >= until_ms) & original, 1)).alias("waiting"),
        )
        with self._phase("activity"):
            self._write_activity(observed, batch_id, after_ms, until_ms)
        labelled, young, waiting = (int(counts.get[k]) for k in ("labelled", "young", "waiting"))
        state = replace(state, waiting=waiting, too_young=state.too_young + young)
        if labelled:
            with self._phase("training rows"):
                state = self._write_training(spark, state, after_ms, until_ms)
        return state, young

    def _write_training(
        self,
        spark: SparkSession,
        state: BatchState,
        after_ms: int | None,
        until_ms: int,
        *,
        authors: DataFrame | None = None,
    ) -> BatchState:
        """Training rows of the original tweets in `[after_ms, until_ms)`.

        Their authors' histories are windowed over the last 7 days before `after_ms` (24 h and
        7 d counts) plus the author carry of everything older (previous originals, their
        engagement sum, the previous tweet's time), which moves forward with the watermark.
        `authors` (a `user_id` column), when given, holds every author with a tweet closing:
        only their history is read (each author's history is its own), and the carry is then
        kept in memory, never committed (it would hold only them).
        """
        batch_id = state.batch_id
        if after_ms is None:  # the first watermark: every tweet of the history may close
            everything = self._history(spark, batch_id)
            assert everything is not None
            with_history = author_history(everything)
        else:
            horizon = after_ms - HISTORY_HORIZON_MS
            carry, state = self._carry(spark, state, horizon, authors)
            slice_ = self._history(spark, batch_id, horizon, state.history_ranges)
            assert slice_ is not None, "the closing tweets are in the history"
            if authors is not None:
                slice_ = slice_.join(authors, "user_id", "left_semi")
            with_history = author_history(slice_, carry)
        _write(
            training_rows(closed_rows(with_history, after_ms, until_ms), self.min_age_ms),
            self.config.training_rows_dir,
            batch_id,
            TRAINING_KEY,
        )
        return state

    def _carry(
        self,
        spark: SparkSession,
        state: BatchState,
        horizon_ms: int,
        authors: DataFrame | None = None,
    ) -> tuple[DataFrame | None, BatchState]:
        """The author carry of every history tweet before `horizon_ms`, and the state naming it.

        The carry `state` names holds the tweets before `state.carry_ms`; the tweets in
        `[carry_ms, horizon_ms)` are merged in and the result is written to
        `carry/batch_id=<batch>`. A tweet is accepted only at or after the watermark, which is
        later than any horizon before it, so a carry never misses a tweet accepted after it was
        written. With `authors` (the flush's), the tweets merged in are only theirs and the
        carry stays in memory: a carry of some authors is never committed.
        """
        empty = author_carry(self._empty_history(spark))
        previous = (
            None
            if state.carry_batch is None
            else self._read_state(spark, self.carry_dir / f"batch_id={state.carry_batch}", empty)
        )
        if state.carry_ms is not None and state.carry_ms >= horizon_ms:
            return previous, state
        with self._phase("carry"):
            older = self._history(
                spark, state.batch_id, state.carry_ms, state.history_ranges, horizon_ms
            )
            if older is None:  # nothing new to carry (the recorded ranges say so)
                return previous, replace(state, carry_ms=horizon_ms)
            if authors is not None:
                older = older.join(authors, "user_id", "left_semi")
            delta = author_carry(older)
            merged = delta if previous is None else merge_carry(previous, delta)
            if authors is not None:
                return merged, state
            folder = self.carry_dir / f"batch_id={state.batch_id}"
            merged.write.mode("overwrite").parquet(spark_path(folder))
            return (
                self._read_state(spark, folder, empty),
                replace(state, carry_batch=state.batch_id, carry_ms=horizon_ms),
            )

    def _write_activity(
        self, recent: DataFrame, batch_id: int, after_ms: int | None, until_ms: int
    ) -> None:
        """Write the windows closing in `(after_ms, until_ms]`; none, no folder."""
        config = self.config
        activity = user_activity(recent, config.activity_window, config.activity_slide)
        written = Observation(f"features-activity-{batch_id}")
        closed = closed_windows(activity, after_ms, until_ms)
        _write(
            closed.observe(written, F.count(F.lit(1)).alias("rows")),
            config.user_activity_dir,
            batch_id,
            ACTIVITY_KEY,
        )
        if not written.get["rows"]:
            shutil.rmtree(config.user_activity_dir / f"batch_id={batch_id}", ignore_errors=True)

    def _write_users(
        self, spark: SparkSession, before: BatchState, state: BatchState
    ) -> BatchState:
        """Merge this batch's tweets into the user state and rewrite the user table from it."""
        batch_id = state.batch_id
        fresh = self._read_state(
            spark, self.history_dir / f"batch_id={batch_id}", self._empty_history(spark)
        )
        if before.users_batch is not None:
            like = user_state(self._empty_history(spark))
            previous: DataFrame | None = self._read_state(
                spark, self.users_state_dir / f"batch_id={before.users_batch}", like
            )
        else:  # none yet, or a checkpoint from before the user state: the history so far
            older = self._history(spark, batch_id - 1) if before.history_rows else None
            previous = None if older is None else user_state(older)
        merged = user_state(fresh, previous)
        folder = self.users_state_dir / f"batch_id={batch_id}"
        with self._phase("users state"):
            merged.write.mode("overwrite").parquet(spark_path(folder))
        with self._phase("users"):
            write_stable(
                users_from_state(self._read_state(spark, folder, merged)),
                self.config.users_dir,
                USERS_KEY,
            )
        return replace(state, users_batch=batch_id)

    def _drop_unreferenced(self, before: BatchState, state: BatchState) -> None:
        """Remove user-state and carry folders neither this state nor the one before names (a
        replay of this batch reads the one before)."""
        for folder, keep in (
            (self.users_state_dir, {before.users_batch, state.users_batch}),
            (self.carry_dir, {before.carry_batch, state.carry_batch}),
        ):
            if not folder.is_dir():
                continue
            for path in folder.glob("batch_id=*"):
                number = path.name.removeprefix("batch_id=")
                if number.isdigit() and int(number) < state.batch_id and int(number) not in keep:
                    shutil.rmtree(path, ignore_errors=True)

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
        if state.closed_ms is None:
            return FlushCounts(0, 0)
        # what waits is the history's last stretch: only the folders that reach it are read
        since = state.closed_ms - self.window_ms
        recent = self._history(spark, state.batch_id, since, state.history_ranges)
        if recent is None:
            return FlushCounts(0, 0)
        batch_id = state.batch_id + 1
        self._note_flush(batch_id)
        behind = (F.col(EVENT_MS) >= state.closed_ms) & ~F.col("is_retweet")
        # the waiting tweets too young for a label are counted by the activity write, not by a
        # pass of their own
        counted = Observation(f"features-flush-{batch_id}")
        observed = recent.observe(
            counted, F.count(F.when(behind & too_young(self.min_age_ms), 1)).alias("young")
        )
        self._write_activity(observed, batch_id, state.closed_ms, 1 << 62)
        young = int(counted.get["young"])
        if state.waiting > young:
            # only the waiting tweets' authors have rows to flush: only their history is read
            authors = recent.where(behind).select("user_id").distinct()
            flushing = replace(state, batch_id=batch_id)
            self._write_training(spark, flushing, state.closed_ms, 1 << 62, authors=authors)
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


def _write(frame: DataFrame, folder: Path, batch_id: int, key: Sequence[str] = ()) -> None:
    write_stable(frame, folder / f"batch_id={batch_id}", key)


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
