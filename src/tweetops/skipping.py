"""`main` skips a step that is done: same code, params and inputs as its last successful run.

The rule is DVC's: a stage is up to date when the md5 of each of its `deps` in dvc.yaml (code
and data, hashed by dvc-data as `dvc status` does) and the values of its `params` sections are
those of a run whose `outs` are still there, unchanged. Params are the values the step runs
with, `-S` overrides included (DVC reads params.yaml only), and the `data` section (where
things go). Nothing is written to dvc.lock: a successful step's MLflow run is tagged with the
fingerprint of its deps and params and with the md5 of each of its outs, and a later `main`
looks for such a run. Outside a DVC repo (no dvc.yaml and .dvc, or .dvc outside a git
repository) every step runs.

Only deterministic steps are skipped: `ingest` from the seeded synthetic source (search, stream
and replay read the world, which no dep describes) and `features`. `train` and `promote` always
run: promote registers the model train just logged, and its decision depends on the registry's
current champion, which no dep describes either.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from mlflow.tracking import MlflowClient

from tweetops.settings import Settings
from tweetops.tracking import dvc_hash

log = logging.getLogger(__name__)

FINGERPRINT_TAG = "tweetops.done.fingerprint"
OUT_TAG_PREFIX = "tweetops.done.out."
SKIPPED_TAG_PREFIX = "tweetops.skipped."


@dataclass(frozen=True)
class StageState:
    """A DVC stage as this run would run it: the fingerprint of its deps and params, its outs."""

    step: str
    fingerprint: str
    outs: tuple[Path, ...]


def stage_state(settings: Settings, step: str, root: Path | None = None) -> StageState | None:
    """The state of the dvc.yaml stage `step`, or None outside a DVC repo or for a step that
    always runs."""
    root = root or Path.cwd()
    if step not in ("ingest", "features") or not (root / "dvc.yaml").exists():
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
        sections = sorted(
            {
                str(name)
                for dep in stage.deps
                if isinstance(dep, ParamsDependency)
                for name in (dep.params or [])
            }
        )
        outs = tuple(root / out.def_path for out in stage.outs)
    params = settings.flat("data", *(section.split(".")[0] for section in sections))
    payload = json.dumps({"deps": deps, "params": params}, sort_keys=True, default=str)
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
