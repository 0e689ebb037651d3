"""The `tweetops` CLI as tests drive it: in this process (typer's runner) or as a real process.

In-process is the default: an error path is the CLI's parsing, settings and step code, and a new
interpreter would spend seconds importing MLflow and PySpark to print one sentence. A real
process is for what only a process shows: signals, kills, the JVM starting, read-only mounts.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from tweetops.cli import app


@dataclass(frozen=True)
class CliResult:
    """What one `tweetops` command gave back: its exit code and what it printed."""

    exit_code: int
    stdout: str
    stderr: str


def run_cli(*args: str) -> CliResult:
    """`tweetops <args>` in this process, from the current directory and environment."""
    result = CliRunner().invoke(app, list(args), prog_name="tweetops")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback the user would see: the test fails with it
    return CliResult(result.exit_code, result.stdout, result.stderr)


def run_cli_process(
    cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`python -m tweetops <args>` as a new process in `cwd`."""
    return subprocess.run(
        [sys.executable, "-m", "tweetops", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def one_sentence(stderr: str) -> str:
    """The one line `stderr` holds, checked to be an `error: ...` sentence and no traceback."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert lines[0].startswith("error: ") and lines[0].endswith("."), lines[0]
    return lines[0]


def run_statuses(store: Path) -> list[str]:
    """The status of every MLflow run in the SQLite store `store` (none when there is none)."""
    if not store.exists():
        return []
    client = MlflowClient(f"sqlite:///{store}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    return [run.info.status for run in client.search_runs(experiments)]
