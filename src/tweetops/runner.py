"""The one shell every step runs in.

:func:`run_step` opens the step's MLflow run (top-level, nested under `main`, or the run
`mlflow run` created), logs the step's settings and lineage (git commit, tool versions, the DVC
hash of each input, the Spark configuration), calls the step's pure core, lets the step publish
what only it knows how to (a model, artifacts), logs the result's metrics, writes the step's
reports and logs its start line and its one summary line (with how long the step took and
which reports it wrote); Spark work in between shows progress (:mod:`tweetops.progress`).
Cores never touch MLflow, never write reports and never print.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, overload

import mlflow
from pyspark.sql import SparkSession

from tweetops.contracts import write_json
from tweetops.errors import TweetopsError
from tweetops.progress import format_duration, spark_progress
from tweetops.settings import Settings
from tweetops.tracking import NOTE_CONTENT_TAG, log_data_lineage, log_spark_conf, step_run

log = logging.getLogger(__name__)

# what a read-only, full or foreign-owned data folder raises
_UNWRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}


class StepResult(Protocol):
    """What a step core returns: its metrics and its one summary line."""

    def logged_metrics(self) -> Mapping[str, float]:
        """Numbers to log as metrics of the step's run."""
        ...

    def summary(self) -> str:
        """The one line the step prints when it is done."""
        ...


C = TypeVar("C")
R = TypeVar("R", bound=StepResult)


@dataclass(frozen=True)
class StepRun:
    """What a core may know of the run it is in: its id, for lineage."""

    run_id: str


@dataclass(frozen=True)
class SparkStepRun(StepRun):
    """The run of a step that needs Spark (`needs_spark=True`): also its SparkSession."""

    spark: SparkSession


Reports = Callable[[R], Mapping[Path, dict[str, Any]]]


@overload
def run_step(
    settings: Settings,
    step: str,
    sections: tuple[str, ...],
    core: Callable[[StepRun], R],
    *,
    needs_spark: Literal[False] = False,
    inputs: Mapping[str, Path] | None = None,
    publish: None = None,
    reports: Reports[R] | None = None,
    run_name: str | None = None,
    exclude: frozenset[str] = frozenset(),
) -> R: ...


@overload
def run_step(
    settings: Settings,
    step: str,
    sections: tuple[str, ...],
    core: Callable[[StepRun], C],
    *,
    needs_spark: Literal[False] = False,
    inputs: Mapping[str, Path] | None = None,
    publish: Callable[[C, StepRun], R],
    reports: Reports[R] | None = None,
    run_name: str | None = None,
    exclude: frozenset[str] = frozenset(),
) -> R: ...


@overload
def run_step(
    settings: Settings,
    step: str,
    sections: tuple[str, ...],
    core: Callable[[SparkStepRun], R],
    *,
    needs_spark: Literal[True],
    inputs: Mapping[str, Path] | None = None,
    publish: None = None,
    reports: Reports[R] | None = None,
    run_name: str | None = None,
    exclude: frozenset[str] = frozenset(),
) -> R: ...


@overload
def run_step(
    settings: Settings,
    step: str,
    sections: tuple[str, ...],
    core: Callable[[SparkStepRun], C],
    *,
    needs_spark: Literal[True],
    inputs: Mapping[str, Path] | None = None,
    publish: Callable[[C, SparkStepRun], R],
    reports: Reports[R] | None = None,
    run_name: str | None = None,
    exclude: frozenset[str] = frozenset(),
) -> R: ...


def run_step(
    settings: Settings,
    step: str,
    sections: tuple[str, ...],
    core: Callable[[Any], Any],
    *,
    needs_spark: bool = False,
    inputs: Mapping[str, Path] | None = None,
    publish: Callable[[Any, Any], Any] | None = None,
    reports: Reports[Any] | None = None,
    run_name: str | None = None,
    exclude: frozenset[str] = frozenset(),
) -> Any:
    """Run `core` as step `step` inside its MLflow run and publish its result.

    `sections` are the settings sections logged as params; `inputs` names the data the step
    read or wrote (logged with their DVC hash once the core is done); `publish` logs what only
    the step knows how to (a model, artifacts) and turns the core's output into the step's
    result (without it the core's output is the result); `reports` maps report files to their
    JSON payloads; `run_name` names the run in MLflow's lists (default: the step); settings in
    `exclude` are not logged when the run opens (the step logs their final values). With
    `needs_spark` the core and `publish` get a :class:`SparkStepRun`, else a :class:`StepRun`.
    """
    started = time.monotonic()
    with step_run(settings, step, sections, run_name=run_name, exclude=exclude) as run_id:
        log.info("%s: started, MLflow run %s", step, run_id)
        context = StepRun(run_id=run_id)
        spark: SparkSession | None = None
        if needs_spark:
            from tweetops.spark import build_spark, spark_conf_for_tracking

            spark = build_spark(settings.spark)
            log_spark_conf(spark_conf_for_tracking(spark))
            context = SparkStepRun(run_id=run_id, spark=spark)
        with spark_progress(spark, step) if spark is not None else nullcontext():
            outcome = _run_core(core, context, step)
            for name, path in (inputs or {}).items():
                log_data_lineage(name, path)
            result = publish(outcome, context) if publish is not None else outcome
        mlflow.log_metrics(dict(result.logged_metrics()))
        mlflow.set_tag(NOTE_CONTENT_TAG, result.summary())  # the run's description in the UI
        written = reports(result) if reports is not None else {}
        for path, payload in written.items():
            write_json(path, payload)
        where = f"; wrote {', '.join(str(path) for path in written)}" if written else ""
        log.info(
            "%s [done in %s%s]",
            result.summary(),
            format_duration(time.monotonic() - started),
            where,
        )
        return result


def _run_core(core: Callable[[Any], C], context: StepRun, step: str) -> C:
    """Call the step's core; an unwritable output folder becomes a one-sentence error."""
    try:
        return core(context)
    except OSError as exc:
        if exc.errno not in _UNWRITABLE:
            raise
        if exc.filename is None:
            raise TweetopsError(
                f"{step} could not write its output ({exc.strerror}): make "
                f"the data folders writable."
            ) from exc
        target = Path(exc.filename)
        raise TweetopsError(
            f"{step} could not write {target} because {target.parent} is "
            f"not writable ({exc.strerror}): make it writable, or point the "
            f"data settings elsewhere with -S data.<key>=<path>."
        ) from exc
