"""The shared step shell: one MLflow run with settings, lineage, metrics, report, summary line."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import Project
from tweetops.errors import TweetopsError
from tweetops.logs import configure_logging
from tweetops.runner import StepRun, run_step


@dataclass(frozen=True)
class Counted:
    rows: int

    def logged_metrics(self) -> dict[str, float]:
        return {"rows": float(self.rows)}

    def summary(self) -> str:
        return f"count: {self.rows} rows"


def test_run_step_logs_settings_lineage_metrics_report_and_summary(
        project: Project, caplog: pytest.LogCaptureFixture) -> None:
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
        result = run_step(settings, "count", ("train",), core, inputs={"input": data},
                          reports=lambda counted: {report: {"rows": counted.rows}})

    assert result == Counted(rows=3)
    assert "count: 3 rows" in caplog.messages
    assert json.loads(report.read_text()) == {"rows": 3}
    run = MlflowClient().get_run(seen[0].run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics == {"rows": 3.0}
    assert run.data.params["train.seed"] == "7"
    assert run.data.tags["tweetops.step"] == "count"
    assert run.data.tags["tweetops.data.input.dvc_md5"]  # md5 of the one-file input
    assert seen[0].spark is None


def test_a_failing_core_ends_its_run_failed_and_writes_nothing(project: Project) -> None:
    report = project.root / "reports" / "count.json"

    def core(run: StepRun) -> Counted:
        raise TweetopsError("No rows.")

    with pytest.raises(TweetopsError):
        run_step(project.settings(), "count", (), core,
                 reports=lambda counted: {report: {"rows": counted.rows}})
    assert not report.exists()
    runs = MlflowClient().search_runs(
        [MlflowClient().get_experiment_by_name("tweetops").experiment_id])
    assert [run.info.status for run in runs] == ["FAILED"]


def test_publish_turns_the_core_output_into_the_result(project: Project) -> None:
    result = run_step(project.settings(), "count", (), lambda run: 5,
                      publish=lambda rows, run: Counted(rows=rows * 2))
    assert result == Counted(rows=10)


@pytest.mark.parametrize(("verbosity", "ours", "mlflow_level"), [
    (0, logging.INFO, logging.WARNING),
    (1, logging.DEBUG, logging.INFO),
    (-1, logging.WARNING, logging.WARNING),
])
def test_verbosity_sets_our_level_and_keeps_library_noise_down(
        verbosity: int, ours: int, mlflow_level: int) -> None:
    configure_logging(verbosity)
    try:
        assert logging.getLogger("tweetops").level == ours
        assert logging.getLogger("mlflow").level == mlflow_level
        assert logging.getLogger("py4j").level == mlflow_level
    finally:
        configure_logging(0)


def test_summary_lines_go_to_stdout_and_warnings_to_stderr(
        capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(0)
    logging.getLogger("tweetops.some_step").info("step: done")
    logging.getLogger("tweetops.some_step").warning("careful")
    captured = capsys.readouterr()
    assert captured.out == "step: done\n"
    assert captured.err == "careful\n"
