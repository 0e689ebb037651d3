"""`main` skips a step whose code, params and inputs are unchanged since its last good run."""

from __future__ import annotations

import logging
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import Project
from tests.e2e.conftest import commit_clone, copy_project, git_user_env
from tweetops.ingest.step import IngestResult, ingest
from tweetops.pipeline import _run_or_skip
from tweetops.settings import Settings
from tweetops.skipping import SKIPPED_TAG_PREFIX, stage_state


def _main_ingest(settings: Settings, skipped: dict[str, str]) -> tuple[str, IngestResult | None]:
    """What `main` does for ingest, inside a `main` run of its own; the main run's id."""
    mlflow.set_experiment("tweetops")
    with mlflow.start_run(run_name="main") as parent:
        mlflow.set_tag("tweetops.step", "main")
        result = _run_or_skip(settings, "ingest", parent.info.run_id, ingest, skipped)
    return parent.info.run_id, result


@pytest.mark.slow
def test_unchanged_ingest_is_skipped_and_a_changed_param_reruns_it_and_what_follows(
    project: Project, caplog: pytest.LogCaptureFixture
) -> None:
    copy_project(project.root)
    commit_clone(project.root, git_user_env())
    settings = project.settings("ingest.n_tweets=120")
    client = MlflowClient()

    first: dict[str, str] = {}
    _, ran = _main_ingest(settings, first)
    assert ran is not None and first == {}
    [ingest_run] = client.search_runs(
        [client.get_experiment_by_name("tweetops").experiment_id],
        filter_string="tags.`tweetops.step` = 'ingest'",
    )
    features_before = stage_state(settings, "features")
    assert features_before is not None

    second: dict[str, str] = {}
    with caplog.at_level(logging.INFO, logger="tweetops"):
        main_id, skipped = _main_ingest(settings, second)
    assert skipped is None
    assert second == {"ingest": ingest_run.info.run_id}
    assert (
        f"ingest: skipped, code, params and inputs unchanged since MLflow run "
        f"{ingest_run.info.run_id} (-S main.force=true reruns it)"
    ) in caplog.messages
    assert client.get_run(main_id).data.tags[f"{SKIPPED_TAG_PREFIX}ingest"] == (
        ingest_run.info.run_id
    )

    forced: dict[str, str] = {}
    _, rerun = _main_ingest(project.settings("ingest.n_tweets=120", "main.force=true"), forced)
    assert rerun is not None and forced == {}

    changed: dict[str, str] = {}
    _, rerun = _main_ingest(project.settings("ingest.n_tweets=150"), changed)
    assert rerun is not None and rerun.counts.accepted == 150 and changed == {}
    # features reads what ingest wrote: its inputs changed, so it reruns too
    features_after = stage_state(project.settings("ingest.n_tweets=150"), "features")
    assert features_after is not None
    assert features_after.fingerprint != features_before.fingerprint


def test_outside_a_dvc_repo_every_step_runs(project: Project) -> None:
    assert not Path("dvc.yaml").exists()
    assert stage_state(project.settings(), "ingest") is None


def test_a_dvc_folder_outside_git_is_no_repo_to_skip_in(project: Project) -> None:
    copy_project(project.root)  # dvc.yaml and .dvc, but no git repository
    assert stage_state(project.settings(), "ingest") is None
