"""Reproduce: re-run a logged training run from its lineage and put its metrics beside the old.

A train run records everything it was made of: its `train.*` and `mlflow.*` settings (params),
the DVC hash of its training rows (`tweetops.data.training.dvc_md5`) and the git commit of the
code (`tweetops.git_commit`). :func:`reproduce` trains again from exactly those:

- the settings are the logged params; `spark.*` is not replayed (it says where a run ran, not
  what it computed: the split fixes the partition count and row order, so any `spark.master`
  gives the same forest) and comes from plumbing.yaml and `-S` as for any step;
- the data is the workspace's when its DVC hash is the logged one, else that version is checked
  out of the project's DVC cache into a scratch folder (refused in one sentence when the cache
  lacks it);
- the code is the workspace's when it is the logged commit's; when it differs and is clean, the
  run's commit is checked out into a temporary git worktree and trained from there; when the
  code has uncommitted changes, reproduce refuses in one sentence.

The new train run carries `tweetops.reproduce.of=<run id>`; its reports go to
`reports/reproduce/<run id>/`, never over the workspace's (`promote` keeps reading those).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from tweetops.errors import TweetopsError
from tweetops.settings import load_settings
from tweetops.tracking import dvc_hash

log = logging.getLogger(__name__)

REPRODUCED_TAG = "tweetops.reproduce.of"
REPLAYED_SECTIONS = ("train", "mlflow")
CODE_PATHS = ("src", "pyproject.toml")  # what "the code" of a run is, for git
REPORT_SETTINGS = {
    "metrics_file": "metrics.json",
    "run_file": "train_run.json",
    "predictions_plot_file": "predictions.csv",
    "importance_plot_file": "feature_importance.csv",
}
_SAME = 1e-9  # relative tolerance under which two metric values are the same number


@dataclass(frozen=True)
class Lineage:
    """What a train run recorded about how it was made."""

    run_id: str
    params: dict[str, str]
    metrics: dict[str, float]
    git_commit: str | None
    data_md5: str | None
    data_path: str | None


@dataclass(frozen=True)
class MetricComparison:
    """One metric of the original run beside the reproduced run's."""

    name: str
    original: float
    reproduced: float | None

    @property
    def same(self) -> bool:
        """Whether both runs have the metric with the same value (to 1e-9, relative)."""
        if self.reproduced is None:
            return False
        return abs(self.original - self.reproduced) <= _SAME * max(1.0, abs(self.original))


@dataclass(frozen=True)
class ReproduceResult:
    """The original run, the new one, and their metrics side by side."""

    original_run_id: str
    run_id: str
    comparisons: list[MetricComparison]
    data_source: str
    code_source: str

    def table(self) -> str:
        """The metrics as aligned text: name, original, reproduced, same or differs."""
        rows = [("metric", "original", "reproduced", "")]
        for item in self.comparisons:
            reproduced = "missing" if item.reproduced is None else f"{item.reproduced:.6g}"
            rows.append(
                (item.name, f"{item.original:.6g}", reproduced, "same" if item.same else "DIFFERS")
            )
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        return "\n".join(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in rows
        )

    def summary(self) -> str:
        """One line: how many metrics match, and both runs."""
        same = sum(item.same for item in self.comparisons)
        return (
            f"reproduce: {same} of {len(self.comparisons)} metrics identical; run "
            f"{self.run_id} reproduces {self.original_run_id} ({self.data_source}; "
            f"{self.code_source})"
        )


def read_lineage(client: MlflowClient, run_id: str) -> Lineage:
    """The lineage `run_id` recorded; one sentence when it is missing or not a train run."""
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise TweetopsError(
            f"Run {run_id} was not found in the tracking store {client.tracking_uri}: check "
            f"the run id and MLFLOW_TRACKING_URI."
        ) from None
    tags = run.data.tags
    step = tags.get("tweetops.step")
    if step != "train":
        raise TweetopsError(
            f"Run {run_id} is {'a ' + step if step else 'not a tweetops'} run, and reproduce "
            f"re-runs train runs: pass the id of a train run (reports/train_run.json has one)."
        )
    return Lineage(
        run_id=run_id,
        params=dict(run.data.params),
        metrics=dict(run.data.metrics),
        git_commit=tags.get("tweetops.git_commit"),
        data_md5=tags.get("tweetops.data.training.dvc_md5"),
        data_path=tags.get("tweetops.data.training.path"),
    )


def replayed_overrides(lineage: Lineage, report_dir: Path) -> list[str]:
    """`-S` overrides giving every `train.*` and `mlflow.*` setting its logged value.

    The logged hyperparameters are the ones the run used (a tuned run logs the tuned ones), so
    `train.tuned_from` is cleared; reports go to `report_dir`.
    """
    overrides = [
        f"{key}={value}"
        for key, value in sorted(lineage.params.items())
        if key.split(".", 1)[0] in REPLAYED_SECTIONS
    ]
    overrides.append("train.tuned_from=null")
    overrides += [f"train.{key}={report_dir / name}" for key, name in REPORT_SETTINGS.items()]
    return overrides


def _git(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], capture_output=True, text=True, timeout=120, check=False, cwd=cwd
    )


def code_commit_to_check_out(lineage: Lineage) -> str | None:
    """The commit to train from, or None when the workspace's code is the run's.

    Refuses in one sentence when the code has uncommitted changes (then it is not any
    commit's code) or when the run's commit is not in this repository.
    """
    if lineage.git_commit is None:
        log.warning(
            "reproduce: run %s recorded no git commit; training with the workspace's code.",
            lineage.run_id,
        )
        return None
    if _git("status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS).stdout.strip():
        raise TweetopsError(
            f"The code in {Path.cwd()} has uncommitted changes (`git status -- src`), so it is "
            f"not the code of run {lineage.run_id} (commit {lineage.git_commit[:12]}): commit "
            f"or stash them and run reproduce again."
        )
    if _git("cat-file", "-e", f"{lineage.git_commit}^{{commit}}").returncode != 0:
        raise TweetopsError(
            f"Commit {lineage.git_commit[:12]} of run {lineage.run_id} is not in this "
            f"repository: fetch it (`git fetch --all`) and run reproduce again."
        )
    differs = _git("diff", "--quiet", lineage.git_commit, "HEAD", "--", *CODE_PATHS)
    return lineage.git_commit if differs.returncode != 0 else None


@contextmanager
def recorded_data(lineage: Lineage, configured: Path) -> Iterator[tuple[Path, str]]:
    """The training rows the run read: the workspace's folder when its DVC hash is the logged
    one, else that version checked out of the DVC cache into a scratch folder (removed after).
    Yields the folder and a few words saying which."""
    path = Path(lineage.data_path) if lineage.data_path else configured
    if lineage.data_md5 is None:
        log.warning("reproduce: run %s recorded no data version.", lineage.run_id)
        yield path, f"data in {path}, version not recorded"
        return
    current = dvc_hash(path)
    if current == lineage.data_md5:
        yield path, f"data {lineage.data_md5[:8]} in {path}"
        return
    scratch = Path(tempfile.mkdtemp(prefix="tweetops-reproduce-data-"))
    try:
        folder = scratch / path.name
        _checkout_from_dvc_cache(lineage, path, current, folder)
        yield folder, f"data {lineage.data_md5[:8]} checked out of the DVC cache"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _checkout_from_dvc_cache(
    lineage: Lineage, path: Path, current: str | None, target: Path
) -> None:
    from dvc.exceptions import DvcException
    from dvc.repo import Repo
    from dvc_data.hashfile.checkout import checkout
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.tree import Tree
    from dvc_objects.fs.local import LocalFileSystem

    assert lineage.data_md5 is not None
    refusal = TweetopsError(
        f"Run {lineage.run_id} trained on version {lineage.data_md5} of {path}, which is not "
        f"the workspace's ({current or 'missing'}) nor in this project's DVC cache: check out "
        f"the commit that recorded it and run `dvc checkout` (or `dvc pull`), then run "
        f"reproduce again."
    )
    if not lineage.data_md5.endswith(".dir"):
        raise refusal
    try:
        repo = Repo(os.getcwd())
    except DvcException:
        raise refusal from None
    try:
        cache = repo.cache.local
        tree = Tree.load(cache, HashInfo("md5", lineage.data_md5))
        checkout(str(target), LocalFileSystem(), tree, cache)
    except (DvcException, OSError, ValueError):
        raise refusal from None
    finally:
        repo.close()


@contextmanager
def code_worktree(commit: str | None) -> Iterator[Path | None]:
    """A temporary detached git worktree at `commit` (removed after), or None for no commit."""
    if commit is None:
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="tweetops-reproduce-code-")) / "code"
    added = _git("worktree", "add", "--detach", str(folder), commit)
    if added.returncode != 0:
        raise TweetopsError(
            f"Commit {commit[:12]} could not be checked out ({added.stderr.strip()[:200]}): "
            f"check `git worktree list` and run reproduce again."
        )
    try:
        yield folder
    finally:
        _git("worktree", "remove", "--force", str(folder))
        shutil.rmtree(folder.parent, ignore_errors=True)


def reproduce(
    run_id: str, params_file: Path, overrides: list[str], client: MlflowClient | None = None
) -> ReproduceResult:
    """Train again from the lineage of train run `run_id` and compare the metrics.

    `overrides` (the user's `-S`) apply after the logged settings: `spark.master` chooses where
    the reproduction runs.
    """
    client = client or MlflowClient()
    lineage = read_lineage(client, run_id)
    commit = code_commit_to_check_out(lineage)
    report_dir = Path("reports") / "reproduce" / run_id
    replayed = replayed_overrides(lineage, report_dir)
    configured = load_settings(params_file, overrides).train.training_rows_dir
    with (
        recorded_data(lineage, configured) as (data, data_source),
        code_worktree(commit) as checkout,
    ):
        settings_overrides = [*replayed, f"train.training_rows_dir={data}", *overrides]
        if checkout is None:
            from tweetops.train import train

            new_run_id = train(load_settings(params_file, settings_overrides)).run_id
            code_source = "the workspace's code"
        else:
            new_run_id = _train_in(checkout, settings_overrides, report_dir)
            code_source = f"code of commit {commit[:12] if commit else ''} in a git worktree"
    client.set_tag(new_run_id, REPRODUCED_TAG, run_id)
    reproduced = client.get_run(new_run_id).data.metrics
    comparisons = [
        MetricComparison(name, value, reproduced.get(name))
        for name, value in sorted(lineage.metrics.items())
    ]
    result = ReproduceResult(run_id, new_run_id, comparisons, data_source, code_source)
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "comparison.json").write_text(
        json.dumps(
            {
                "original_run_id": run_id,
                "run_id": new_run_id,
                "metrics": {
                    item.name: {
                        "original": item.original,
                        "reproduced": item.reproduced,
                        "same": item.same,
                    }
                    for item in comparisons
                },
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    log.info("%s", result.table())
    log.info(result.summary())
    return result


def _train_in(checkout: Path, overrides: list[str], report_dir: Path) -> str:
    """Run `tweetops train` with the code of `checkout` (its settings files, the workspace's data
    and tracking store, the checked-out commit as its git commit); the new run's id."""
    paths = [str(checkout / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
    git_dir = _git("rev-parse", "--absolute-git-dir", cwd=checkout).stdout.strip()
    # the run records the checked-out commit (git reads it from the worktree, not the cwd)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(paths),
        "GIT_DIR": git_dir,
        "GIT_WORK_TREE": str(checkout),
    }
    command = [sys.executable, "-m", "tweetops", "train", "--params", str(checkout / "params.yaml")]
    for override in overrides:
        command += ["-S", override]
    done = subprocess.run(command, env=env, check=False)
    if done.returncode != 0:
        raise TweetopsError(
            f"Training with the code of {checkout} failed (exit {done.returncode}, its error "
            f"is above): that commit may not train with today's settings or data."
        )
    written = json.loads((report_dir / REPORT_SETTINGS["run_file"]).read_text(encoding="utf-8"))
    return str(written["run_id"])
