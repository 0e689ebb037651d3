"""`main` skips a step whose code, params and inputs are unchanged since its last good run."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient
from pyspark.sql import SparkSession

from tests.conftest import SMALL_PROJECT, Project, TrainedProject
from tests.e2e.conftest import commit_clone, copy_project, git_user_env
from tweetops.contracts import TrainedModel, read_contract, write_contract
from tweetops.ingest.step import IngestResult, ingest
from tweetops.pipeline import _run_or_skip, run_main
from tweetops.settings import Settings
from tweetops.skipping import SKIPPED_TAG_PREFIX, missing_train_output, stage_state

STEPS = ("ingest", "features", "train", "promote")


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


def _children(client: MlflowClient, main_run_id: str) -> dict[str, str]:
    """Step -> run id of the nested runs of one `main` run."""
    experiment = client.get_experiment_by_name("tweetops")
    assert experiment is not None
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{main_run_id}'"
    )
    return {run.data.tags["tweetops.step"]: run.info.run_id for run in runs}


@pytest.mark.slow
def test_a_second_main_skips_all_four_steps_leaves_the_registry_and_force_reruns_them(
    project: Project, spark: SparkSession, caplog: pytest.LogCaptureFixture
) -> None:
    copy_project(project.root)
    commit_clone(project.root, git_user_env())
    settings = project.settings(*SMALL_PROJECT)
    name = settings.promote.model_name
    client = MlflowClient()

    first = run_main(settings)
    assert first.skipped == {}
    first_steps = _children(client, first.run_id)
    assert set(first_steps) == set(STEPS)
    versions = {str(v.version) for v in client.search_model_versions(f"name = '{name}'")}
    assert versions == {first.promotion.version}
    # someone takes the champion alias away by hand: a second run must leave it so
    had_champion = first.promotion.champion_after is not None
    if had_champion:
        client.delete_registered_model_alias(name, "champion")

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tweetops"):
        second = run_main(settings)
    assert second.skipped == first_steps
    assert _children(client, second.run_id) == {}
    skip_lines = [message for message in caplog.messages if ": skipped, " in message]
    assert skip_lines == [
        f"{step}: skipped, code, params and inputs unchanged since MLflow run "
        f"{first_steps[step]} (-S main.force=true reruns it)"
        + ("; the registry is left as it is: it has no champion" if step == "promote" else "")
        for step in STEPS
    ]
    assert {str(v.version) for v in client.search_model_versions(f"name = '{name}'")} == versions
    assert "champion" not in client.get_registered_model(name).aliases
    main_run = client.get_run(second.run_id)
    for step in STEPS:
        assert main_run.data.tags[f"{SKIPPED_TAG_PREFIX}{step}"] == first_steps[step]
    assert main_run.data.tags["tweetops.train_run_id"] == first.train.run_id
    assert main_run.data.metrics["rmse"] == pytest.approx(first.train.metrics["rmse"])
    assert main_run.data.metrics["registered_version"] == float(first.promotion.version)

    forced = run_main(project.settings(*SMALL_PROJECT, "main.force=true"))
    assert forced.skipped == {}
    forced_steps = _children(client, forced.run_id)
    assert set(forced_steps) == set(STEPS)
    assert not set(forced_steps.values()) & set(first_steps.values())
    assert forced.train.run_id != first.train.run_id
    assert len(client.search_model_versions(f"name = '{name}'")) == len(versions) + 1


@pytest.mark.slow
def test_a_train_run_is_reused_only_while_its_report_model_and_version_are_there(
    trained_project: TrainedProject,
) -> None:
    settings = trained_project.settings()
    trained = trained_project.trained
    run_file = settings.train.run_file
    name = settings.promote.model_name
    client = MlflowClient()

    def missing() -> str | None:
        return missing_train_output(client, trained.run_id, run_file, name)

    assert missing() == f"its model is no version of {name} any more"
    mlflow.register_model(trained.model_uri, name)
    assert missing() is None

    report = run_file.read_text()
    named = read_contract(run_file, TrainedModel, written_by="train")
    write_contract(run_file, replace(named, run_id="0" * 32))
    assert missing() == f"{run_file} names run {'0' * 32}"
    run_file.unlink()
    assert missing() == f"{run_file} is missing or unreadable"
    run_file.write_text(report)
    assert missing() is None

    client.delete_run(trained.run_id)
    assert missing() == f"its run {trained.run_id} was deleted"
