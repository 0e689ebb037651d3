"""Tune: a Hyperopt search over the RandomForest hyperparameters, one nested MLflow run per trial.

The search space is read from the `tune` section of params.yaml; everything else about the model
(max_bins, feature subset strategy, seed) and the split comes from `train`, so a tuned setting
drops straight into `tweetops train -S tuned_from=reports/tune.json`. Trials fit on part of
train's training split and are scored on the rest (the validation rows); train's test rows are
never used, so the test metrics of a later `train` stay an honest estimate.

Two backends (`tune.backend`):

- `spark_trials` (default): Hyperopt's `SparkTrials` runs each trial as one Spark task, many at
  once; a trial fits a scikit-learn forest on rows collected to pandas once and broadcast to the
  executors (:mod:`tweetops.tune.sklearn_trials`).
- `mllib`: Hyperopt's serial `Trials` on the driver; each trial is a distributed Spark ML fit.

After either search the best configuration is refit as the Spark ML pipeline on the fit rows and
scored on the validation rows: the product serves that pipeline, so its score is the one that
counts, and the gap to the search's score shows how well the search carried over.

:func:`search` is the core: it takes the rows and a `record_trial` callback and returns the
trials, without touching MLflow; :func:`tune` is the step, whose callback makes each trial a
nested MLflow run.
"""

from __future__ import annotations

import logging
import re
import time
from contextlib import suppress
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import mlflow
import numpy as np
from hyperopt import STATUS_OK, SparkTrials, Trials, fmin, hp, rand, tpe
from hyperopt.exceptions import AllTrialsFailed
from pyspark.sql import DataFrame

from tweetops.contracts import TuneOutcome
from tweetops.dataset import (
    load_training_rows,
    persist_rows,
    require_training_rows,
    split_train_test,
)
from tweetops.errors import TweetopsError
from tweetops.model.pipeline import MIN_TRAINING_ROWS, build_pipeline, evaluate
from tweetops.progress import trial_progress
from tweetops.runner import SparkStepRun, run_step
from tweetops.settings import Settings, TrainSettings, TuneSettings
from tweetops.spark import connect_remote, is_local_master
from tweetops.tracking import data_label
from tweetops.tune.sklearn_trials import (
    TUNED_KEYS,
    RecordTrial,
    SklearnObjective,
    chosen_params,
    collect_rows,
    epoch_ms,
    trial_name,
)
from tweetops.tune.trial_runs import (
    log_trials,
    recorder_for_active_run,
    settle_uncounted_trials,
    write_trials_plot,
)

TUNE_SECTIONS = ("tune", "train", "spark", "mlflow")
__all__ = ["TUNED_KEYS", "TuneResult", "search", "tune"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TuneResult:
    """The best hyperparameters found, the trials behind them and the Spark ML refit's score."""

    run_id: str
    backend: str
    best_params: dict[str, Any]
    best_validation_rmse: float
    refit_validation_rmse: float
    refit_validation_r2: float
    best_trial_run_id: str
    trials: list[dict[str, Any]]
    fit_rows: int
    validation_rows: int
    search_rows: int
    parallelism: int
    search_seconds: float
    max_evals: int
    result_file: Path | None = None

    def logged_metrics(self) -> dict[str, float]:
        """Both validation rmses (search, Spark refit), row counts and the search's duration."""
        return {
            "best_validation_rmse": self.best_validation_rmse,
            "refit_validation_rmse": self.refit_validation_rmse,
            "refit_validation_r2": self.refit_validation_r2,
            "fit_rows": float(self.fit_rows),
            "validation_rows": float(self.validation_rows),
            "search_rows": float(self.search_rows),
            "trials": float(len(self.trials)),
            "search_seconds": self.search_seconds,
        }

    def summary(self) -> str:
        """One line: both losses and the train command that uses the best params."""
        return (
            f"tune ({self.backend}): best validation rmse {self.best_validation_rmse:.4f} "
            f"(Spark ML refit {self.refit_validation_rmse:.4f}) after {len(self.trials)} "
            f"trials in {self.search_seconds:.0f} s; train with it: "
            f"tweetops train -S tuned_from={self.result_file or '<tune.result_file>'}"
        )

    def outcome(self) -> TuneOutcome:
        """What `tune.result_file` holds, for `train -S tuned_from=...`."""
        return TuneOutcome(
            run_id=self.run_id,
            backend=self.backend,
            best_params=self.best_params,
            best_validation_rmse=self.best_validation_rmse,
            refit_validation_rmse=self.refit_validation_rmse,
            best_trial_run_id=self.best_trial_run_id,
            max_evals=self.max_evals,
            trials=len(self.trials),
        )


def search_space(config: TuneSettings) -> dict[str, Any]:
    """Hyperopt space: integer ranges step by one, the subsampling rate is uniform."""

    def integer(name: str, bounds: tuple[int, int]) -> Any:
        return hp.uniformint(name, bounds[0], bounds[1])

    return {
        "num_trees": integer("num_trees", config.num_trees),
        "max_depth": integer("max_depth", config.max_depth),
        "min_instances_per_node": integer("min_instances_per_node", config.min_instances_per_node),
        "subsampling_rate": hp.uniform("subsampling_rate", *config.subsampling_rate),
    }


def trial_settings(base: TrainSettings, params: dict[str, Any]) -> TrainSettings:
    """Train settings with one trial's hyperparameters (ints cast: Hyperopt yields floats)."""
    return TrainSettings.model_validate({**base.model_dump(), **chosen_params(params)})


def fit_and_validation_rows(
    rows: DataFrame, config: TuneSettings, base: TrainSettings
) -> tuple[DataFrame, DataFrame]:
    """Train's training split, split again into fit and validation rows (test rows left out)."""
    train_split, _test_split = split_train_test(
        rows, seed=base.seed, test_fraction=base.test_fraction, partitions=base.split_partitions
    )
    fit_rows, validation_rows = train_split.randomSplit(
        [1.0 - config.validation_fraction, config.validation_fraction], seed=config.seed
    )
    return fit_rows, validation_rows


def check_max_rows(config: TuneSettings) -> None:
    """`tune.max_rows` (fit plus validation rows) must leave enough rows to fit on."""
    expected_fit = config.max_rows * (1.0 - config.validation_fraction)
    if config.backend == "spark_trials" and expected_fit < MIN_TRAINING_ROWS:
        needed = int(MIN_TRAINING_ROWS / (1.0 - config.validation_fraction)) + 1
        raise TweetopsError(
            f"tune.max_rows={config.max_rows} is too small to split into fit "
            f"and validation rows: set it to at least {needed}."
        )


def check_backend(settings: Settings) -> None:
    """Refuse, before any trial starts, a `spark_trials` search that cannot work where it runs.

    SparkTrials needs the classic `sparkContext`, which Spark Connect lacks (hyperopt#905), and
    its trials record themselves from the executors, which on a cluster cannot share the
    driver's SQLite database or `mlruns` folder.
    """
    if settings.tune.backend != "spark_trials":
        return
    remote = connect_remote(settings.spark)
    if remote is not None:
        raise TweetopsError(
            f"tune.backend=spark_trials cannot run over Spark Connect ({remote}) because "
            f"Hyperopt's SparkTrials needs the classic sparkContext (hyperopt#905): unset "
            f"spark.remote and SPARK_REMOTE and set spark.master to local[*] or spark://host:port."
        )
    tracking_uri = mlflow.get_tracking_uri()
    if not is_local_master(settings.spark.master) and urlparse(tracking_uri).scheme in (
        "",
        "file",
        "sqlite",
    ):
        raise TweetopsError(
            f"tune.backend=spark_trials on spark.master={settings.spark.master} records each "
            f"trial from the executors, which cannot share the local tracking store "
            f"{tracking_uri}: set MLFLOW_TRACKING_URI to a tracking server every node reaches "
            f"(http://host:port) or use tune.backend=mllib."
        )


# a job aborted by a task that failed on its executor: that error (the JVM's own, no Python)
_TASK_FAILURE = re.compile(r"most recent failure: Lost task [^:\n]*?\): (.+)")
_PYTHON_ERROR = re.compile(r"^\s*((?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception|Exit)): .+$")
_JVM_PACKAGES = ("org.", "java.", "javax.", "scala.", "py4j.")
_FAILED_TRIAL = re.compile(r"trial task (\d+) failed, exception is ")


class FailedTrialLog(logging.Handler):
    """Keeps what SparkTrials logs of each failed trial: a trial whose task failed in Spark
    (e.g. a worker that cannot unpickle it) leaves no message in its trial document."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: dict[int, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        """Record the message of a `trial task N failed` line."""
        message = record.getMessage()
        found = _FAILED_TRIAL.match(message)
        if found:
            self.messages.setdefault(int(found.group(1)), message[found.end() :])


def error_line(text: str) -> str:
    """The last Python error line of `text` (`ModuleNotFoundError: No module named 'x'`), else
    the executor's error of a failed Spark task (`java.io.IOException: Cannot run program ...`),
    else its first line; at most 300 characters."""
    found = [
        match.group(0).strip()
        for match in map(_PYTHON_ERROR.match, text.splitlines())
        if match and not match.group(1).startswith(_JVM_PACKAGES)
    ]
    task = _TASK_FAILURE.search(text)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if found:
        return found[-1][:300]
    return (task.group(1).strip() if task else (lines[0] if lines else "unknown error"))[:300]


def first_trial_error(trials: Trials, logged: dict[int, str]) -> str | None:
    """The error of the first failed trial (lowest trial id), as its last Python error line.

    SparkTrials keeps failed trials out of `trials.trials`; their tracebacks are in the trial
    documents' `misc.error`, or only in its log (`logged`) when the task failed in Spark.
    """
    documents = {
        doc["tid"]: doc["misc"]["error"]
        for doc in trials._dynamic_trials
        if doc.get("misc", {}).get("error")
    }
    failed = sorted({*documents, *logged})
    if not failed:
        return None
    tid = failed[0]
    kind, traceback = documents.get(tid, (None, None))
    return error_line(str(traceback or logged.get(tid) or kind))


def _mllib_objective(
    fit_rows: DataFrame, validation_rows: DataFrame, base: TrainSettings, record_trial: RecordTrial
) -> Any:
    def objective(params: dict[str, Any]) -> dict[str, Any]:
        chosen = chosen_params(params)
        started = epoch_ms()
        model = build_pipeline(trial_settings(base, chosen)).fit(fit_rows)
        metrics = evaluate(model.transform(validation_rows))
        ended = epoch_ms()
        trial_id = record_trial(
            trial_name(chosen),
            chosen,
            {f"validation_{name}": value for name, value in metrics.items()},
            started,
            ended,
        )
        return {"loss": metrics["rmse"], "status": STATUS_OK, "params": chosen, "run_id": trial_id}

    return objective


def _run_search(
    fit_rows: DataFrame,
    validation_rows: DataFrame,
    counts: tuple[int, int],
    config: TuneSettings,
    base: TrainSettings,
    record_trial: RecordTrial,
) -> tuple[Trials, int, int]:
    """Run fmin with the configured backend; the trials, the parallelism and rows searched."""
    algorithm = tpe.suggest if config.algorithm == "tpe" else rand.suggest
    options: dict[str, Any] = {
        "algo": algorithm,
        "max_evals": config.max_evals,
        "rstate": np.random.default_rng(config.seed),
        # the caller picks the best of the finished trials; with none (every trial cancelled at
        # tune.timeout_s) fmin's own argmin would end in "There are no evaluation tasks"
        "return_argmin": False,
    }
    if config.backend == "mllib":
        trials = Trials()
        options["show_progressbar"] = trial_progress("tune", lambda: _best_loss(trials))
        objective = _mllib_objective(fit_rows, validation_rows, base, record_trial)
        with suppress(AllTrialsFailed):  # no finished trial: search() says so
            fmin(
                objective, search_space(config), trials=trials, timeout=config.timeout_s, **options
            )
        return trials, 1, sum(counts)

    spark = fit_rows.sparkSession
    local = collect_rows(fit_rows, validation_rows, counts, config)
    if local.rows < local.sampled_from:
        log.info(
            "tune: %d of %d rows sampled for the search (tune.max_rows=%d)",
            local.rows,
            local.sampled_from,
            config.max_rows,
        )
    parallelism = config.parallelism or spark.sparkContext.defaultParallelism
    log.info(
        "tune: SparkTrials, parallelism %d, %d trials of scikit-learn forests on %d rows",
        parallelism,
        config.max_evals,
        local.rows,
    )
    shipped = spark.sparkContext.broadcast(local)
    try:
        trials = SparkTrials(parallelism=parallelism, timeout=config.timeout_s, spark_session=spark)
        options["show_progressbar"] = trial_progress("tune", lambda: _best_loss(trials))
        # no early_stop_fn: with SparkTrials it can hang the search in hyperopt 0.3.0.
        # max_queue_len: fmin proposes one trial per second by default; with `parallelism`
        # proposals queued, a freed slot takes the next trial at SparkTrials' next poll.
        failures = FailedTrialLog()
        spark_trials_log = logging.getLogger("hyperopt-spark")
        spark_trials_log.addHandler(failures)
        searching = time.monotonic()
        try:
            with suppress(AllTrialsFailed):  # no finished trial: said below or by search()
                fmin(
                    SklearnObjective(shipped, base, record_trial),
                    search_space(config),
                    trials=trials,
                    max_queue_len=parallelism,
                    **options,
                )
            # trials cancelled at tune.timeout_s fail too: search() says that in its own words
            timed_out = (
                config.timeout_s is not None and time.monotonic() - searching >= config.timeout_s
            )
            error = first_trial_error(trials, failures.messages)
            if error is not None and not timed_out and trials.count_successful_trials() == 0:
                raise TweetopsError(
                    f"All {trials.count_failed_trials()} tune trials failed, the first with "
                    f"{error!r}: fix that (on a cluster: the workers' Python, the tweetops "
                    f"package, a tracking server every node reaches) and run tune again."
                )
        finally:
            spark_trials_log.removeHandler(failures)
    finally:
        shipped.destroy()
    return trials, parallelism, local.rows


def _best_loss(trials: Trials) -> float | None:
    """The lowest validation rmse of the trials finished so far (None before the first)."""
    losses = [loss for loss in trials.losses() if loss is not None]
    return min(losses) if losses else None


def search(
    rows: DataFrame, config: TuneSettings, base: TrainSettings, record_trial: RecordTrial
) -> TuneResult:
    """Run the Hyperopt search over `rows`, then refit the best configuration with Spark ML.

    `record_trial` records each trial and names it; with `spark_trials` it runs on the
    executors, so it must pickle.
    """
    # every trial reads both: persisted once at train.storage_level
    fit_rows, validation_rows = (
        persist_rows(split, base.storage_level)
        for split in fit_and_validation_rows(rows, config, base)
    )
    try:
        counts = fit_rows.count(), validation_rows.count()
        if counts[0] < MIN_TRAINING_ROWS or counts[1] == 0:
            raise TweetopsError(
                f"Only {counts[0]} fit and {counts[1]} validation rows in "
                f"{base.training_rows_dir}: ingest more tweets or change tune.validation_fraction."
            )
        started = time.monotonic()
        trials, parallelism, searched = _run_search(
            fit_rows, validation_rows, counts, config, base, record_trial
        )
        elapsed = time.monotonic() - started
        done = [
            trial for trial in trials.trials if trial.get("result", {}).get("status") == STATUS_OK
        ]
        if not done:
            raise TweetopsError(
                f"No trial finished within tune.timeout_s={config.timeout_s}: "
                f"raise it or lower tune.max_evals."
            )
        best = min(done, key=lambda trial: trial["result"]["loss"])["result"]
        refit = evaluate(
            build_pipeline(trial_settings(base, best["params"]))
            .fit(fit_rows)
            .transform(validation_rows)
        )
    finally:
        fit_rows.unpersist()
        validation_rows.unpersist()

    history = [
        {
            "trial": trial["tid"],
            **trial["result"]["params"],
            "validation_rmse": trial["result"]["loss"],
            "run_id": trial["result"]["run_id"],
        }
        for trial in sorted(done, key=lambda trial: trial["tid"])
    ]
    return TuneResult(
        run_id="",
        backend=config.backend,
        best_params=best["params"],
        best_validation_rmse=float(best["loss"]),
        refit_validation_rmse=refit["rmse"],
        refit_validation_r2=refit["r2"],
        best_trial_run_id=best["run_id"],
        trials=history,
        fit_rows=counts[0],
        validation_rows=counts[1],
        search_rows=searched,
        parallelism=parallelism,
        search_seconds=elapsed,
        max_evals=config.max_evals,
    )


def tune(settings: Settings) -> TuneResult:
    """Run the search in the step's MLflow run; write the best params to `tune.result_file`."""
    config, base = settings.tune, settings.train
    # before the run opens and Spark starts: bad input leaves no run behind
    check_backend(settings)
    check_max_rows(config)
    require_training_rows(base.training_rows_dir)

    def core(run: SparkStepRun) -> TuneResult:
        rows = load_training_rows(run.spark, base.training_rows_dir)
        return search(rows, config, base, recorder_for_active_run(config.backend))

    def publish(found: TuneResult, run: SparkStepRun) -> TuneResult:
        result = replace(found, run_id=run.run_id, result_file=config.result_file)
        # the best forest under train's names: what `train -S tuned_from=...` will fit
        mlflow.log_params({f"train.{key}": value for key, value in result.best_params.items()})
        mlflow.log_param("tune.effective_parallelism", result.parallelism)
        mlflow.set_tag("tweetops.tune.best_trial_run_id", result.best_trial_run_id)
        mlflow.log_metric("best_loss", result.best_validation_rmse)
        log_trials(result.trials)
        write_trials_plot(result.trials, config.trials_plot_file)
        uncounted = settle_uncounted_trials(run.run_id, {t["run_id"] for t in result.trials})
        if uncounted:
            log.warning(
                "tune: %d trial run(s) were cancelled at tune.timeout_s=%s and are not "
                "in the trials table; they carry tweetops.tune.trial_state=uncounted.",
                uncounted,
                config.timeout_s,
            )
        return result

    def reports(result: TuneResult) -> dict[Path, dict[str, Any]]:
        return {config.result_file: asdict(result.outcome())}

    name = f"tune {config.backend} x{config.max_evals} {data_label(base.training_rows_dir)}"
    return run_step(
        settings,
        "tune",
        TUNE_SECTIONS,
        core,
        exclude=frozenset(f"train.{key}" for key in TUNED_KEYS),
        needs_spark=True,
        inputs={"training": base.training_rows_dir},
        publish=publish,
        reports=reports,
        run_name=name,
    )
