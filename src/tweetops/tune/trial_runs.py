"""MLflow records of a search: one nested run per trial, and the parent run's summary artifacts.

Trials of the `spark_trials` backend run in Spark's Python worker processes, which inherit the
driver's environment. Under `mlflow run` that environment holds `MLFLOW_RUN_ID`, and a worker
calling `mlflow.start_run(nested=True)` would resume the parent run instead of nesting under it
(MLflow issue 15713), and a relative tracking URI would resolve against the worker's own
directory. :class:`TrialRecorder` therefore uses `MlflowClient` with an absolute tracking URI and
the parent's run id, never the fluent API. Executors of a cluster do not inherit the driver's
environment either: the recorder carries the tracking server's credentials
(MLFLOW_TRACKING_USERNAME/PASSWORD) inside the pickled task, never in a Spark setting (those
appear on the driver JVM's command line) nor in its repr. With a SQLite store, concurrent
trials write one at a time behind a file lock next to the database, so no trial fails on
"database is locked".
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import mlflow
import pandas as pd

TRIAL_STEP_TAG = "tune-trial"
_LOCK_TIMEOUT_S = 300
_CREDENTIAL_VARIABLES = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


def absolute_tracking_uri() -> str:
    """The active tracking URI with any relative SQLite or file path made absolute."""
    uri = mlflow.get_tracking_uri()
    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///") :]
        if not path.startswith("/"):
            return f"sqlite:///{Path(path).resolve()}"
        return uri
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(parsed.path if parsed.scheme else uri).resolve().as_uri()
    return uri


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


@contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """Serialise writes to a SQLite store across processes; other stores need no lock."""
    database = _sqlite_path(uri)
    if database is None:
        yield
        return
    from filelock import FileLock

    with FileLock(f"{database}.tweetops.lock", timeout=_LOCK_TIMEOUT_S):
        yield


@dataclass(frozen=True)
class TrialRecorder:
    """Records one trial as a nested run of `parent_run_id`; picklable, for Spark workers."""

    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    backend: str
    credentials: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __call__(
        self,
        name: str,
        params: dict[str, Any],
        metrics: dict[str, float],
        started_ms: int,
        ended_ms: int,
    ) -> str:
        """Record the trial as a run under the parent spanning its fit, with `fit_seconds`.

        The run is created after the fit (a worker holds no run while it fits), so its start
        and end times are the fit's, passed to the tracking store explicitly.
        """
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.tracking import MlflowClient

        for variable, value in self.credentials.items():
            os.environ.setdefault(variable, value)
        fit_seconds = (ended_ms - started_ms) / 1000.0
        with _store_lock(self.tracking_uri):
            client = MlflowClient(tracking_uri=self.tracking_uri)
            run = client.create_run(
                self.experiment_id,
                start_time=started_ms,
                run_name=name,
                tags={
                    "mlflow.parentRunId": self.parent_run_id,
                    "tweetops.step": TRIAL_STEP_TAG,
                    "tweetops.tune.backend": self.backend,
                    "tweetops.tune.worker_pid": str(os.getpid()),
                    "tweetops.tune.worker_host": socket.gethostname(),
                    # a standalone executor runs in its own work folder, named by worker and
                    # executor: which worker ran the trial, where all share one host
                    "tweetops.tune.worker_dir": os.getcwd(),
                },
            )
            run_id: str = run.info.run_id
            client.log_batch(
                run_id,
                metrics=[
                    Metric(key, float(value), ended_ms, 0)
                    for key, value in {**metrics, "fit_seconds": fit_seconds}.items()
                ],
                params=[Param(f"train.{key}", str(value)) for key, value in params.items()],
                tags=[
                    RunTag("tweetops.tune.parent_run_id", self.parent_run_id),
                    RunTag(
                        "mlflow.note.content",
                        f"Tune trial {name}: fit for {fit_seconds:.1f} s, validation rmse "
                        f"{metrics.get('validation_rmse', float('nan')):.4f}.",
                    ),
                ],
            )
            client.set_terminated(run_id, "FINISHED", end_time=ended_ms)
        return run_id


def recorder_for_active_run(backend: str) -> TrialRecorder:
    """A recorder nesting trials under the active MLflow run (the tune step's run)."""
    active = mlflow.active_run()
    assert active is not None, "the tune step's run must be active"
    return TrialRecorder(
        tracking_uri=absolute_tracking_uri(),
        experiment_id=active.info.experiment_id,
        parent_run_id=active.info.run_id,
        backend=backend,
        credentials={
            variable: os.environ[variable]
            for variable in _CREDENTIAL_VARIABLES
            if os.environ.get(variable)
        },
    )


def settle_uncounted_trials(parent_run_id: str, counted_run_ids: set[str]) -> int:
    """Mark the parent's trial runs that the search did not count; the number marked.

    When `tune.timeout_s` passes, SparkTrials cancels the running trials: one may already have
    recorded its run while Hyperopt drops its result, and a worker killed while recording leaves
    its run RUNNING. Such runs get `tweetops.tune.trial_state=uncounted` (RUNNING ones end
    KILLED), so the parent's children agree with its trials table.
    """
    from mlflow.tracking import MlflowClient

    uri = absolute_tracking_uri()
    client = MlflowClient(tracking_uri=uri)
    parent = client.get_run(parent_run_id)
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=(
            f"tags.`mlflow.parentRunId` = '{parent_run_id}' and "
            f"tags.`tweetops.step` = '{TRIAL_STEP_TAG}'"
        ),
        max_results=50_000,
    )
    uncounted = [run for run in children if run.info.run_id not in counted_run_ids]
    with _store_lock(uri):
        for run in uncounted:
            client.set_tag(run.info.run_id, "tweetops.tune.trial_state", "uncounted")
            if run.info.status == "RUNNING":
                client.set_terminated(run.info.run_id, "KILLED")
    return len(uncounted)


def write_trials_plot(trials: list[dict[str, Any]], path: Path) -> None:
    """The CSV `dvc plots` draws: each trial's validation rmse and the best one so far."""
    table = pd.DataFrame(trials).sort_values("trial")
    plot = pd.DataFrame(
        {
            "trial": table["trial"],
            "validation_rmse": table["validation_rmse"],
            "best_so_far": table["validation_rmse"].cummin(),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.tmp")
    plot.to_csv(partial, index=False, float_format="%.6g")
    partial.replace(path)


def log_trials(trials: list[dict[str, Any]]) -> None:
    """Log the trials table (CSV) and the loss-by-trial chart (PNG) to the active run."""
    import matplotlib

    matplotlib.use("Agg")  # headless: set here, when a figure is drawn, never at import
    import matplotlib.pyplot as plt

    table = pd.DataFrame(trials)
    with tempfile.TemporaryDirectory() as scratch:
        csv_path = Path(scratch) / "trials.csv"
        table.to_csv(csv_path, index=False)
        mlflow.log_artifact(str(csv_path), artifact_path="tune")
        figure, axis = plt.subplots(figsize=(7, 3.5))
        axis.plot(table["trial"], table["validation_rmse"], "o-", color="#1d9bf0", label="trial")
        axis.plot(
            table["trial"],
            table["validation_rmse"].cummin(),
            "-",
            color="#e0245e",
            label="best so far",
        )
        axis.set_xlabel("trial (in the order Hyperopt proposed it)")
        axis.set_ylabel("validation rmse")
        axis.set_title("Loss by trial")
        axis.legend()
        figure.tight_layout()
        png_path = Path(scratch) / "loss-by-trial.png"
        figure.savefig(png_path, dpi=110)
        plt.close(figure)
        mlflow.log_artifact(str(png_path), artifact_path="tune")
