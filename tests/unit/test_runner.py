"""The shared step shell: one MLflow run with settings, lineage, metrics, report, summary line."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import signal
import time
from dataclasses import dataclass

import pytest
from mlflow.tracking import MlflowClient
from mlflow.utils.logging_utils import MLFLOW_LOGGING_STREAM
from pydantic import BaseModel, field_serializer
from pyspark.sql import SparkSession

from tests.conftest import Project
from tweetops.errors import TweetopsError
from tweetops.logs import configure_logging
from tweetops.runner import SparkStepRun, StepRun, run_step


@dataclass(frozen=True)
class Counted:
    rows: int

    def logged_metrics(self) -> dict[str, float]:
        return {"rows": float(self.rows)}

    def summary(self) -> str:
        return f"count: {self.rows} rows"


def test_run_step_logs_settings_lineage_metrics_report_and_summary(
    project: Project, caplog: pytest.LogCaptureFixture
) -> None:
    settings = project.settings("train.seed=7")
    data = project.root / "data" / "input.txt"
    data.parent.mkdir()
    data.write_text("hello\n")
    report = project.root / "reports" / "count.json"
    seen: list[StepRun] = []

    def core(run: StepRun) -> Counted:
        seen.append(run)
        return Counted(rows=3)

    with caplog.at_level(logging.INFO, logger="tweetops"):
        result = run_step(
            settings,
            "count",
            ("train",),
            core,
            inputs={"input": data},
            reports=lambda counted: {report: {"rows": counted.rows}},
        )

    assert result == Counted(rows=3)
    assert caplog.messages[0] == f"count: started, MLflow run {seen[0].run_id}"
    assert re.fullmatch(
        rf"count: 3 rows \[done in \d+\.\d s; wrote {re.escape(str(report))}\]",
        caplog.messages[-1],
    )
    assert json.loads(report.read_text()) == {"rows": 3}
    run = MlflowClient().get_run(seen[0].run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics == {"rows": 3.0}
    assert run.data.params["train.seed"] == "7"
    assert run.data.tags["tweetops.step"] == "count"
    # what `dvc add` records for one file: the md5 of its bytes
    assert run.data.tags["tweetops.data.input.dvc_md5"] == hashlib.md5(b"hello\n").hexdigest()
    assert type(seen[0]) is StepRun  # no SparkSession without needs_spark


def test_a_spark_step_gets_the_session_in_its_run_handle(
    project: Project, spark: SparkSession
) -> None:
    seen: list[SparkStepRun] = []

    def core(run: SparkStepRun) -> Counted:
        seen.append(run)
        return Counted(rows=run.spark.range(4).count())

    result = run_step(project.settings(), "count", (), core, needs_spark=True)

    assert result == Counted(rows=4)
    assert seen[0].spark is spark  # the one session, reused
    run = MlflowClient().get_run(seen[0].run_id)
    assert run.data.tags["tweetops.spark.master"] == spark.sparkContext.master


def test_a_failing_core_ends_its_run_failed_and_writes_nothing(project: Project) -> None:
    report = project.root / "reports" / "count.json"

    def core(run: StepRun) -> Counted:
        raise TweetopsError("No rows.")

    with pytest.raises(TweetopsError):
        run_step(
            project.settings(),
            "count",
            (),
            core,
            reports=lambda counted: {report: {"rows": counted.rows}},
        )
    assert not report.exists()
    runs = MlflowClient().search_runs(
        [MlflowClient().get_experiment_by_name("tweetops").experiment_id]
    )
    assert [run.info.status for run in runs] == ["FAILED"]


def test_publish_turns_the_core_output_into_the_result(project: Project) -> None:
    result = run_step(
        project.settings(),
        "count",
        (),
        lambda run: 5,
        publish=lambda rows, run: Counted(rows=rows * 2),
    )
    assert result == Counted(rows=10)


@pytest.mark.parametrize(
    ("verbosity", "ours", "mlflow_level"),
    [
        (0, logging.INFO, logging.ERROR),
        (1, logging.DEBUG, logging.INFO),
        (-1, logging.WARNING, logging.ERROR),
    ],
)
def test_verbosity_sets_our_level_and_keeps_library_noise_down(
    verbosity: int, ours: int, mlflow_level: int
) -> None:
    configure_logging(verbosity)
    try:
        assert logging.getLogger("tweetops").level == ours
        assert logging.getLogger("mlflow").level == mlflow_level
        assert logging.getLogger("py4j").level == mlflow_level
        assert logging.getLogger("hyperopt-spark").level == mlflow_level
        # MLflow's prints ("Successfully registered model ...") and download bars: -v only
        assert MLFLOW_LOGGING_STREAM.enabled is (verbosity > 0)
        if verbosity <= 0:
            assert os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "false"
    finally:
        configure_logging(0)


def test_summary_lines_go_to_stdout_and_warnings_to_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(0)
    logging.getLogger("tweetops.some_step").info("step: done")
    logging.getLogger("tweetops.some_step").warning("careful")
    captured = capsys.readouterr()
    assert captured.out == "step: done\n"
    assert captured.err == "careful\n"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_that_surfaces_wrapped_still_ends_the_run_killed(
    project: Project, signum: int
) -> None:
    """pydantic turns any exception raised in a serializer (the signal's included) into its
    own error: the run still ends KILLED and the step exits 128 + the signal number."""

    class Stamped(BaseModel):
        at: int

        @field_serializer("at")
        def signal_arrives_here(self, value: int) -> int:
            os.kill(os.getpid(), signum)
            time.sleep(5)  # the handler runs before this returns
            return value

    def core(run: StepRun) -> Counted:
        Stamped(at=1).model_dump(mode="json")
        return Counted(rows=1)

    with pytest.raises(SystemExit) as stopped:
        run_step(project.settings(), "count", (), core)
    assert stopped.value.code == 128 + signum
    runs = MlflowClient().search_runs(
        [MlflowClient().get_experiment_by_name("tweetops").experiment_id]
    )
    assert [run.info.status for run in runs] == ["KILLED"]
