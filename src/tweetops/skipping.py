"""`main` skips a step that is done: same code, params and inputs as its last successful run.

The rule is DVC's: a stage is up to date when the md5 of each of its `deps` in dvc.yaml (code
and data, hashed by dvc-data as `dvc status` does) and the values of its `params` sections are
those of a run whose `outs` are still there, unchanged. Params are the values the step runs
with, `-S` overrides included (DVC reads the files only), and the `data` section (where
things go). Nothing is written to dvc.lock: a successful step's MLflow run is tagged with the
fingerprint of its deps and params and with the md5 of each of its outs, and a later `main`
looks for such a run. Outside a DVC repo (no dvc.yaml and .dvc, or .dvc outside a git
repository) every step runs.

Skipped are `ingest` from the seeded synthetic source (search, stream and replay read the world,
which no dep describes), `features`, `train` and `promote`. Train's fingerprint also holds the
best params tune handed it in memory (`main.tune`); tune itself always runs. A skipped train is
reused only while what it left is all there (its run, `reports/train_run.json` naming it, its
model and the registry version promote made of it), a skipped promote only while its version
is; the caller checks that (:func:`missing_train_output`, and the pipeline for promote). A
skipped promote leaves the registry as it is: an alias moved by hand since (a rollback) stays.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mlflow.entities import LoggedModelStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from tweetops import registry
from tweetops.contracts import TrainedModel, read_contract
from tweetops.errors import TweetopsError
from tweetops.settings import Settings
from tweetops.tracking import dvc_hash

log = logging.getLogger(__name__)

FINGERPRINT_TAG = "tweetops.done.fingerprint"
OUT_TAG_PREFIX = "tweetops.done.out."
SKIPPED_TAG_PREFIX = "tweetops.skipped."
SKIPPABLE_STEPS = ("ingest", "features", "train", "promote")
SETTINGS_FILES = ("params.yaml", "plumbing.yaml")


@dataclass(frozen=True)
class StageState:
    """A DVC stage as this run would run it: the fingerprint of its deps and params, its outs."""

    step: str
    fingerprint: str
    outs: tuple[Path, ...]


def stage_state(
    settings: Settings,
    step: str,
    root: Path | None = None,
    handed_over: Mapping[str, object] | None = None,
) -> StageState | None:
    """The state of the dvc.yaml stage `step`, or None outside a DVC repo or for a step that
    always runs. `handed_over` is what the step gets in memory besides its params (train: the
    best params of the tune run `main` just ran), part of the fingerprint too."""
    root = root or Path.cwd()
    if step not in SKIPPABLE_STEPS or not (root / "dvc.yaml").exists():
        return None
    if step == "ingest" and settings.ingest.source != "synthetic":
        return None
    if not (root / ".dvc").is_dir():
        return None
    from dvc.dependency.param import ParamsDependency
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        repo = Repo(str(root))
    except DvcException as exc:  # e.g. .dvc without git: DVC would not run either; rerun
        log.debug("not skipping %s: %s is no usable DVC repo (%s)", step, root, exc)
        return None
    with repo:
        [stage] = repo.stage.collect(step)
        deps = {
            dep.def_path: dvc_hash(root / dep.def_path)
            for dep in stage.deps
            if not isinstance(dep, ParamsDependency)
        }
        # params of the settings files; those read from another file (promote's mlflow_run of the
        # train report) are in that file's md5, a dep too
        sections = sorted(
            {
                str(name)
                for dep in stage.deps
                if isinstance(dep, ParamsDependency) and Path(dep.def_path).name in SETTINGS_FILES
                for name in (dep.params or [])
            }
        )
        outs = tuple(root / out.def_path for out in stage.outs)
    params = settings.flat("data", *(section.split(".")[0] for section in sections))
    fingerprinted: dict[str, object] = {"deps": deps, "params": params}
    if handed_over:
        fingerprinted["handed_over"] = dict(handed_over)
    payload = json.dumps(fingerprinted, sort_keys=True, default=str)
    return StageState(step, hashlib.md5(payload.encode()).hexdigest(), outs)


def earlier_run(client: MlflowClient, experiment_id: str, state: StageState) -> str | None:
    """The newest FINISHED run of the step with the same fingerprint whose outs are unchanged."""
    runs = client.search_runs(
        [experiment_id],
        filter_string=(
            f"tags.`tweetops.step` = '{state.step}' and attributes.status = 'FINISHED' "
            f"and tags.`{FINGERPRINT_TAG}` = '{state.fingerprint}'"
        ),
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        return None
    run = runs[0]
    for out in state.outs:
        recorded = run.data.tags.get(f"{OUT_TAG_PREFIX}{out.name}")
        if recorded is None or recorded != (dvc_hash(out) or "missing"):
            return None
    return str(run.info.run_id)


def record_done(client: MlflowClient, run_id: str, state: StageState) -> None:
    """Tag the step's successful run with its fingerprint and the md5 of each of its outs."""
    for out in state.outs:
        client.set_tag(run_id, f"{OUT_TAG_PREFIX}{out.name}", dvc_hash(out) or "missing")
    client.set_tag(run_id, FINGERPRINT_TAG, state.fingerprint)


def latest_child_run(client: MlflowClient, experiment_id: str, parent: str, step: str) -> str:
    """The run of `step` just finished under the `main` run `parent`."""
    [run] = client.search_runs(
        [experiment_id],
        filter_string=(
            f"tags.`mlflow.parentRunId` = '{parent}' and tags.`tweetops.step` = '{step}'"
        ),
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return str(run.info.run_id)


def missing_train_output(
    client: MlflowClient, run_id: str, run_file: Path, model_name: str
) -> str | None:
    """What the earlier train run `run_id` left that is gone, in a few words, or None if all is
    there: the run itself, `run_file` naming it, its logged model, its registered version."""
    try:
        run = client.get_run(run_id)
    except MlflowException:
        return f"its run {run_id} is gone"
    if run.info.lifecycle_stage != "active":
        return f"its run {run_id} was deleted"
    try:
        trained = read_contract(run_file, TrainedModel, written_by="train")
    except TweetopsError:
        return f"{run_file} is missing or unreadable"
    if trained.run_id != run_id:
        return f"{run_file} names run {trained.run_id}"
    if not _logged_model_exists(client, trained.model_uri):
        return f"its model {trained.model_uri} is gone"
    if registry.find_version(client, model_name, trained.model_uri, run_id) is None:
        return f"its model is no version of {model_name} any more"
    return None


def _logged_model_exists(client: MlflowClient, model_uri: str) -> bool:
    """Whether the logged model `models:/<model id>` is still there, whole (status READY)."""
    prefix = "models:/"
    if not model_uri.startswith(prefix) or "/" in model_uri[len(prefix) :]:
        return True  # a runs:/ or registry URI: the registered version check covers it
    try:
        model = client.get_logged_model(model_uri[len(prefix) :])
    except MlflowException:
        return False
    return bool(model.status == LoggedModelStatus.READY)
