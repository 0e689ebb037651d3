"""MLflow runs for pipeline steps, and the lineage every run records.

A step run is top-level when a step is run on its own, nested under the `main` run when the
whole chain runs, and the run `mlflow run` created when launched as an MLflow Project entry
point (MLflow passes it in `MLFLOW_RUN_ID`). Every run records the git commit, the DVC hash of
the data it read, library versions and, for Spark steps, the Spark configuration.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow

from tweetops.settings import Settings
from tweetops.versions import tool_versions

_MAX_PARAM_LENGTH = 6000


@contextmanager
def step_run(settings: Settings, step: str, sections: tuple[str, ...],
             run_name: str | None = None) -> Iterator[str]:
    """Open the MLflow run of one step, log its settings and lineage, and yield its run id.

    `run_name` tells runs of one step apart in a list (default: the step's name).
    """
    parent = mlflow.active_run()
    if parent is None and not os.environ.get("MLFLOW_RUN_ID"):
        mlflow.set_experiment(settings.mlflow.experiment)
    with mlflow.start_run(run_name=run_name or step, nested=parent is not None) as run:
        if run_name and os.environ.get("MLFLOW_RUN_ID") == run.info.run_id:
            mlflow.set_tag("mlflow.runName", run_name)  # the run `mlflow run` created
        mlflow.set_tags({"tweetops.step": step, **lineage_tags(), **pipeline_run_tags()})
        log_settings(settings, sections)
        yield run.info.run_id


def log_settings(settings: Settings, sections: tuple[str, ...]) -> None:
    """Log the given settings sections as params named `section.key`."""
    params = {key: _param_value(value) for key, value in settings.flat(*sections).items()}
    mlflow.log_params(params)


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text[:_MAX_PARAM_LENGTH]


def lineage_tags() -> dict[str, str]:
    """Git commit (and whether the tree was dirty) plus tool versions, as MLflow tags."""
    tags = {f"tweetops.version.{name}": version for name, version in tool_versions().items()}
    commit = _git("rev-parse", "HEAD")
    if commit:
        tags["tweetops.git_commit"] = commit
        dirty = _git("status", "--porcelain", "--untracked-files=no")
        tags["tweetops.git_dirty"] = str(bool(dirty))
    return tags


def log_data_lineage(name: str, path: Path) -> str | None:
    """Tag the run with the DVC hash of the data at `path` (what `dvc add` would record)."""
    digest = dvc_hash(path)
    if digest is not None:
        mlflow.set_tag(f"tweetops.data.{name}.dvc_md5", digest)
        mlflow.set_tag(f"tweetops.data.{name}.path", str(path))
    return digest


def dvc_hash(path: Path) -> str | None:
    """DVC's md5 of a file or folder (folders end in `.dir`), computed with dvc-data itself."""
    from dvc_data.hashfile.build import build
    from dvc_data.hashfile.db import HashFileDB
    from dvc_objects.fs.local import LocalFileSystem

    if not path.exists():
        return None
    fs = LocalFileSystem()
    with tempfile.TemporaryDirectory() as scratch:
        _, _, obj = build(HashFileDB(fs, scratch), str(path.resolve()), fs, "md5", dry_run=True)
    return obj.hash_info.value


def log_spark_conf(conf: dict[str, str]) -> None:
    """Log the Spark configuration as an artifact and its key settings as tags."""
    mlflow.log_dict(conf, "spark/spark-conf.json")
    for key in ("spark.master", "spark.sql.shuffle.partitions", "spark.driver.memory",
                "spark.app.name"):
        if key in conf:
            mlflow.set_tag(f"tweetops.{key}", conf[key])


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, timeout=30,
                              check=False)
    except OSError:
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def data_label(path: Path) -> str:
    """`data:<first 6 characters of the DVC hash>` of `path`, for run names."""
    digest = dvc_hash(path)
    return f"data:{digest[:6]}" if digest else "data:none"


PIPELINE_RUN_ENV = "TWEETOPS_PIPELINE_RUN"


def pipeline_run_tags() -> dict[str, str]:
    """`tweetops.pipeline_run`: one value for every step of one `dvc repro` / `dvc exp run`.

    DVC gives each stage command `DVC_STAGE` and `DVC_ROOT` but nothing that names the
    invocation, so the value is derived from the `dvc` process that ran the stage (its pid and
    start time, read from /proc): the same for all stages of one invocation, different for the
    next. `TWEETOPS_PIPELINE_RUN` in the environment overrides it (e.g. a CI job id).
    """
    explicit = os.environ.get(PIPELINE_RUN_ENV)
    if explicit:
        return {"tweetops.pipeline_run": explicit}
    stage = os.environ.get("DVC_STAGE")
    if not stage:
        return {}
    tags = {"tweetops.dvc_stage": stage}
    ancestor = _dvc_ancestor()
    if ancestor is not None:
        tags["tweetops.pipeline_run"] = ancestor
    return tags


def _dvc_ancestor() -> str | None:
    pid = os.getppid()
    for _ in range(8):  # stage command <- shell <- dvc: a few levels at most
        proc = Path("/proc") / str(pid)
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        # `dvc repro`, `/venv/bin/dvc exp run`, `python -m dvc repro`
        if "dvc" in (Path(arg.decode(errors="replace")).name for arg in argv[:3]):
            boot = fields[19]  # starttime, in clock ticks since boot
            return f"dvc-{os.uname().nodename}-{pid}-{boot}"
        pid = int(fields[1])  # ppid
        if pid <= 1:
            return None
    return None
