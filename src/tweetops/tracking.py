"""MLflow runs for pipeline steps, and the lineage every run records.

A step run is top-level when a step is run on its own, nested under the `main` run when the
whole chain runs, and the run `mlflow run` created when launched as an MLflow Project entry
point (MLflow passes it in `MLFLOW_RUN_ID`). Every run records the git commit, the DVC hash of
the data it read, library versions, the host and process id and, for Spark steps, the Spark
configuration. No run stays RUNNING after its process is gone: a signal ends it KILLED, and a
run a SIGKILL left RUNNING is marked KILLED by the next step that starts, as is a run
`mlflow run` created whose environment never started a step (on a store on this machine).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args
from urllib.parse import urlparse

import mlflow
from filelock import FileLock
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_SOURCE_NAME, MLFLOW_SOURCE_TYPE
from pydantic import BaseModel

from tweetops.errors import Interrupted
from tweetops.settings import Settings
from tweetops.versions import tool_versions

log = logging.getLogger(__name__)

_MAX_PARAM_LENGTH = 6000


HOST_TAG = "tweetops.host"
DVC_EXPERIMENT_TAG = "tweetops.dvc_experiment"
DVC_EXPERIMENT_ENV = "DVC_EXP_NAME"  # what `dvc exp run` gives each stage it runs
PID_TAG = "tweetops.pid"
NOTE_TAG = "tweetops.note"
SETTINGS_ARTIFACT = "settings.json"  # every setting of the run's sections, paths included
REGISTERED_MODEL_URI_TAG = "tweetops.registered_model_uri"
NOTE_CONTENT_TAG = "mlflow.note.content"  # the description MLflow's UI shows and edits
EXPERIMENT_NOTE = (
    "tweetops: one run per pipeline step (tag `tweetops.step`), nested under a `main` run "
    "when the whole chain runs. Compare models in the runs table: columns rmse, r2, "
    "baseline_rmse, train.num_trees, train.max_depth; group by `tweetops.dvc_experiment` to "
    "see one group per `dvc exp show` row."
)


@contextmanager
def step_run(
    settings: Settings,
    step: str,
    sections: tuple[str, ...],
    run_name: str | None = None,
    exclude: frozenset[str] = frozenset(),
) -> Iterator[str]:
    """Open the MLflow run of one step, log its settings and lineage, and yield its run id.

    `run_name` tells runs of one step apart in a list (default: the step's name). A top-level
    run first prepares the tracking store (created and migrated once, under a file lock) and
    marks runs of killed processes KILLED. SIGTERM and SIGINT end the run (and its
    parents) as KILLED and exit with 128 + the signal number; any other error ends it FAILED.
    """
    parent = mlflow.active_run()
    if parent is None:
        prepare_store(settings)
    experiment = dvc_experiment()
    name = run_name or step
    if experiment is not None:
        name = f"{name} exp:{experiment}"
    with _signals_interrupt() as received:
        run = mlflow.start_run(run_name=name, nested=parent is not None)
        try:
            if name != step and os.environ.get("MLFLOW_RUN_ID") == run.info.run_id:
                mlflow.set_tag("mlflow.runName", name)  # the run `mlflow run` created
            mlflow.set_tags(
                {
                    "tweetops.step": step,
                    HOST_TAG: socket.gethostname(),
                    PID_TAG: str(os.getpid()),
                    **lineage_tags(),
                    **pipeline_run_tags(),
                    **({DVC_EXPERIMENT_TAG: experiment} if experiment is not None else {}),
                }
            )
            log_settings(settings, sections, exclude)
            yield run.info.run_id
        except BaseException as exc:
            signum = _interrupting_signal(exc, received)
            if signum is None:
                _end_if_active(run.info.run_id, "FAILED")
                raise
            try:
                _end_all_runs("KILLED")
            except Exception as error:  # the next step marks a run of a gone process KILLED
                log.warning(
                    "The MLflow run %s could not be ended (%s); the next step marks it KILLED.",
                    run.info.run_id,
                    error,
                )
            log.error(
                "error: %s stopped by %s; its MLflow run %s was marked KILLED: run the step "
                "again to redo it.",
                step,
                signal.Signals(signum).name,
                run.info.run_id,
            )
            raise SystemExit(128 + signum) from None
        _end_if_active(run.info.run_id, "FINISHED")


@dataclass
class _ReceivedSignal:
    signum: int | None = None


def _interrupting_signal(exc: BaseException, received: _ReceivedSignal) -> int | None:
    """The signal that stopped the step, or None when `exc` is an error of its own.

    The exception a signal raises can surface wrapped: pydantic's serializers, for one, turn
    any exception (KeyboardInterrupt included) into a PydanticSerializationError. So a step
    that received a signal was stopped by it, whatever exception reached this far.
    """
    if isinstance(exc, Interrupted):
        return exc.signum
    if isinstance(exc, KeyboardInterrupt):
        return signal.SIGINT
    return received.signum


def _end_if_active(run_id: str, status: str) -> None:
    active = mlflow.active_run()
    if active is not None and active.info.run_id == run_id:
        mlflow.end_run(status)


def _end_all_runs(status: str) -> None:
    while mlflow.active_run() is not None:
        mlflow.end_run(status)


@contextmanager
def _signals_interrupt() -> Iterator[_ReceivedSignal]:
    """Turn SIGTERM into :class:`Interrupted` while a step runs (SIGINT already interrupts);
    yield the signal that arrived, so a wrapped exception is still known as the signal's.

    A step that stops gracefully on signals (the live features stream) installs its own
    handlers before its run opens; those are kept: raising inside a Py4J call would break the
    JVM connection instead of stopping the query between two micro-batches.
    """
    received = _ReceivedSignal()
    if threading.current_thread() is not threading.main_thread() or callable(
        signal.getsignal(signal.SIGTERM)
    ):
        yield received
        return

    def interrupt(signum: int, _frame: Any) -> None:
        received.signum = signum
        raise Interrupted(signum)

    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, interrupt)}
    sigint = signal.getsignal(signal.SIGINT)
    if callable(sigint):  # Python's KeyboardInterrupt, or PySpark's (it cancels jobs first)

        def note_sigint(signum: int, frame: Any) -> None:
            received.signum = signum
            sigint(signum, frame)

        previous[signal.SIGINT] = signal.signal(signal.SIGINT, note_sigint)
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def prepare_store(settings: Settings) -> None:
    """Create and migrate the tracking store once, under a file lock, and set the experiment.

    Two steps starting at once on a fresh SQLite store would otherwise both run its migrations.
    Then runs of this host whose process is gone are marked KILLED.
    """
    lock_path = _store_lock_path(mlflow.get_tracking_uri())
    lock = FileLock(str(lock_path)) if lock_path is not None else nullcontext()
    with lock:
        client = MlflowClient()
        experiment = client.get_experiment_by_name(settings.mlflow.experiment)
        if not os.environ.get("MLFLOW_RUN_ID"):
            experiment = mlflow.set_experiment(settings.mlflow.experiment)
    if experiment is not None:
        if NOTE_CONTENT_TAG not in (experiment.tags or {}):
            client.set_experiment_tag(experiment.experiment_id, NOTE_CONTENT_TAG, EXPERIMENT_NOTE)
        mark_orphaned_runs_killed(client, experiment.experiment_id)


def _store_lock_path(uri: str) -> Path | None:
    """A lock file beside a local store (SQLite file or `mlruns` folder); None for servers."""
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite":
        database = uri.removeprefix("sqlite:///")
        if not database or database == uri or database.startswith(":memory:"):
            return None
        path = Path(database.split("?", 1)[0])
        path.parent.mkdir(parents=True, exist_ok=True)
        return path.with_name(f"{path.name}.lock")
    if parsed.scheme in ("", "file"):
        folder = Path(parsed.path)
        folder.parent.mkdir(parents=True, exist_ok=True)
        return folder.with_name(f"{folder.name}.lock")
    return None


def mark_orphaned_runs_killed(client: MlflowClient, experiment_id: str) -> list[str]:
    """Mark RUNNING runs of this host whose process is gone (and their nested runs) KILLED.

    Such runs are what a SIGKILL (or a crash of the machine) leaves behind. Returns their ids.
    """
    running = client.search_runs(
        [experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000
    )
    host = socket.gethostname()
    orphans = {
        run.info.run_id: run
        for run in running
        if run.data.tags.get(HOST_TAG) == host and not process_alive(run.data.tags.get(PID_TAG, ""))
    }
    grown = True
    while grown:  # nested runs (tune's trials) died with their parent
        children = {
            run.info.run_id: run
            for run in running
            if run.data.tags.get("mlflow.parentRunId") in orphans and run.info.run_id not in orphans
        }
        orphans.update(children)
        grown = bool(children)
    for run_id, run in orphans.items():
        pid = run.data.tags.get(PID_TAG) or run.data.tags.get("mlflow.parentRunId")
        client.set_tag(
            run_id,
            NOTE_TAG,
            f"marked KILLED by process {os.getpid()}: the process "
            f"({pid}) on {host} was gone while the run was RUNNING",
        )
        client.set_terminated(run_id, "KILLED")
        log.warning("Marked run %s KILLED: the process that ran it is gone.", run_id)
    stillborn = _stillborn_project_runs(running)
    for run in stillborn:
        client.set_tag(
            run.info.run_id,
            NOTE_TAG,
            f"marked KILLED by process {os.getpid()}: `mlflow run` created it, its environment "
            f"never started a step, and no `mlflow run` runs on {host}",
        )
        client.set_terminated(run.info.run_id, "KILLED")
        log.warning(
            "Marked run %s KILLED: `mlflow run` created it but never started its step "
            "(its environment failed to build).",
            run.info.run_id,
        )
    return [*orphans, *(run.info.run_id for run in stillborn)]


def _stillborn_project_runs(running: list[Run]) -> list[Run]:
    """RUNNING runs `mlflow run` created whose process never started a step, now dead.

    Such a run has MLflow's project tags and none of ours (a step tags its run first thing).
    It is dead when no `mlflow run` of its project (`mlflow.source.name`) is alive on this
    machine, which tells only for a store on this machine (a SQLite file or a folder): on a
    tracking server the run may belong to an `mlflow run` elsewhere, still building its
    environment, so those are left alone.
    """
    if _store_lock_path(mlflow.get_tracking_uri()) is None:
        return []
    own = os.environ.get("MLFLOW_RUN_ID")
    candidates = [
        run
        for run in running
        if run.data.tags.get(MLFLOW_SOURCE_TYPE) == "PROJECT"
        and "tweetops.step" not in run.data.tags
        and run.info.run_id != own
    ]
    if not candidates:
        return []
    live = mlflow_run_projects()
    return [run for run in candidates if run.data.tags.get(MLFLOW_SOURCE_NAME, "") not in live]


def mlflow_run_projects() -> set[str]:
    """The projects `mlflow run` processes on this machine run: each one's working directory,
    and its project argument as given and resolved against that directory."""
    projects: set[str] = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = [
                part.decode(errors="replace")
                for part in (proc / "cmdline").read_bytes().split(b"\0")
            ]
            cwd = Path(os.readlink(proc / "cwd"))
        except OSError:
            continue
        for index, arg in enumerate(argv[:-1]):
            if Path(arg).name == "mlflow" and argv[index + 1] == "run":
                projects.add(str(cwd))
                for later in argv[index + 2 :]:
                    if later and not later.startswith("-"):
                        projects.update({later, str((cwd / later).resolve())})
                break
    return projects


def process_alive(pid_text: str) -> bool:
    """True when the process with this id runs on this machine (a zombie counts as gone)."""
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def log_settings(
    settings: Settings, sections: tuple[str, ...], exclude: frozenset[str] = frozenset()
) -> None:
    """Log the given settings sections as params named `section.key`, as in params.yaml.

    Files and folders are not params (nobody compares runs by them): they are in the one
    artifact `settings.json` with every other value of the sections. Keys in `exclude` are left
    for the step to log once it knows their final value.
    """
    active = mlflow.active_run()
    # `mlflow run -P section.key=value` logged the user's spelling of that setting already
    logged = active.data.params if active is not None else {}
    params = {}
    for section in sections:
        values = getattr(settings, section)
        for key, value in values.model_dump(mode="json").items():
            name = f"{section}.{key}"
            if name in exclude or name in logged or _is_path(values, key) or value == "":
                continue
            params[name] = _param_value(value)
    mlflow.log_params(params)
    mlflow.log_dict(settings.flat(*sections), SETTINGS_ARTIFACT)


def _is_path(section: BaseModel, key: str) -> bool:
    annotation = type(section).model_fields[key].annotation
    return annotation is Path or Path in get_args(annotation)


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
    for key in (
        "spark.master",
        "spark.sql.shuffle.partitions",
        "spark.driver.memory",
        "spark.app.name",
    ):
        if key in conf:
            mlflow.set_tag(f"tweetops.{key}", conf[key])


def _git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=30, check=False
        )
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


def dvc_experiment() -> str | None:
    """The name of the DVC experiment this process runs a stage of (`dvc exp run`), or None."""
    return os.environ.get(DVC_EXPERIMENT_ENV) or None


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
