"""Progress of long work: a bar redrawn in place on a terminal, a periodic line in a pipe.

A step's Spark work (feature micro-batches, the Spark ML fit and refit) is followed by
:func:`spark_progress`, which polls Spark's status tracker; tune's trials report through
:func:`trial_progress`, Hyperopt's progress-callback protocol. On a terminal (stdout is a TTY)
both draw a tqdm bar; in a pipe or a CI log they log a line after :data:`PIPE_INTERVAL_S`
seconds, then ever less often (the wait doubles after each line), and none for shorter work.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pyspark.sql import SparkSession
from tqdm import tqdm

log = logging.getLogger(__name__)

PIPE_INTERVAL_S = 30.0
_POLL_S = 0.5


def on_terminal() -> bool:
    """True when stdout is a terminal a bar can be redrawn on."""
    isatty = getattr(sys.stdout, "isatty", None)
    return bool(isatty and isatty())


class Progress:
    """One step's progress: `update(done, total, text)` draws the bar or logs a periodic line."""

    def __init__(self, label: str, unit: str, *, interval_s: float = PIPE_INTERVAL_S) -> None:
        self.label = label
        self.unit = unit
        self.interval_s = interval_s
        self._started = time.monotonic()
        self._last_line = self._started
        self._wait_s = interval_s
        self._bar: Any = None
        if on_terminal() and log.isEnabledFor(logging.INFO):
            self._bar = tqdm(desc=label, unit=unit, leave=False, dynamic_ncols=True)

    def update(self, done: int, total: int, text: str = "") -> None:
        """Show `done` of `total` units (and `text`): redraw the bar, or log when it is time."""
        if self._bar is not None:
            self._bar.total = max(total, done)
            self._bar.n = done
            self._bar.set_postfix_str(text, refresh=False)
            self._bar.refresh()
            return
        now = time.monotonic()
        if now - self._last_line < self._wait_s:
            return
        self._last_line = now
        self._wait_s *= 2  # 30 s, then 60 s, 120 s...: a long step does not flood the log
        detail = f", {text}" if text else ""
        log.info(
            "%s: %d/%d %s%s (%s)",
            self.label,
            done,
            total,
            self.unit,
            detail,
            format_duration(now - self._started),
        )

    def close(self) -> None:
        """Remove the bar (the step's end line follows)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def format_duration(seconds: float) -> str:
    """`4.2 s`, `3 min 05 s`: how long a step or its work took."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


@contextmanager
def spark_progress(spark: SparkSession, label: str) -> Iterator[None]:
    """Follow the Spark tasks run while the block runs: finished of all tasks seen so far.

    A daemon thread polls the status tracker; the counts are cumulative over the block's
    stages, so the bar moves forward across the many jobs of a fit.
    """
    tracker = spark.sparkContext.statusTracker()
    progress = Progress(label, "tasks")
    stop = threading.Event()
    seen: dict[int, tuple[int, int]] = {}

    def poll() -> None:
        while not stop.wait(_POLL_S):
            try:
                active = set(tracker.getActiveStageIds())
                for stage_id in active:
                    info = tracker.getStageInfo(stage_id)
                    if info is not None:
                        seen[stage_id] = (info.numCompletedTasks, info.numTasks)
            except Exception:  # the session is stopping: no more progress to show
                return
            for stage_id, (_, tasks) in list(seen.items()):
                if stage_id not in active:  # finished (or skipped) since the last poll
                    seen[stage_id] = (tasks, tasks)
            if seen:
                done = sum(finished for finished, _ in seen.values())
                total = sum(tasks for _, tasks in seen.values())
                progress.update(done, total, f"{len(seen)} Spark stages")

    watcher = threading.Thread(target=poll, name=f"progress-{label}", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join(timeout=5)
        progress.close()


def trial_progress(label: str, best_loss: Callable[[], float | None]) -> Any:
    """A Hyperopt `show_progressbar` callback: `trial 7/12, best rmse 0.6431`.

    `best_loss` returns the best validation rmse so far (None before the first trial ends).
    """

    @contextmanager
    def callback(initial: int, total: int) -> Iterator[_TrialCounter]:
        counter = _TrialCounter(Progress(label, "trials"), initial, total, best_loss)
        try:
            yield counter
        finally:
            counter.progress.close()

    return callback


class _TrialCounter:
    """What Hyperopt's fmin updates after each finished trial."""

    def __init__(
        self,
        progress: Progress,
        initial: int,
        total: int,
        best_loss: Callable[[], float | None],
    ) -> None:
        self.progress = progress
        self.done = initial
        self.total = total
        self.best_loss = best_loss
        self.postfix: object = None  # fmin assigns its own "best loss" here; we compute ours

    def update(self, n: int) -> None:
        """`n` more trials finished."""
        self.done += n
        best = self.best_loss()
        self.progress.update(
            self.done, self.total, f"best rmse {best:.4f}" if best is not None else ""
        )
