"""Trial runs the search did not count are marked, and none stays RUNNING."""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from tests.conftest import Project
from tweetops.tune.trial_runs import TRIAL_STEP_TAG, settle_uncounted_trials


def _trial(client: MlflowClient, experiment_id: str, parent_id: str, finished: bool) -> str:
    run = client.create_run(
        experiment_id, tags={"mlflow.parentRunId": parent_id, "tweetops.step": TRIAL_STEP_TAG}
    )
    if finished:
        client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def test_uncounted_trial_runs_are_marked_and_ended(project: Project) -> None:
    client = MlflowClient()
    experiment_id = client.create_experiment("tune-settle")
    parent = client.create_run(experiment_id).info.run_id
    other_parent = client.create_run(experiment_id).info.run_id
    counted = _trial(client, experiment_id, parent, finished=True)
    cancelled_after_recording = _trial(client, experiment_id, parent, finished=True)
    killed_while_recording = _trial(client, experiment_id, parent, finished=False)
    elsewhere = _trial(client, experiment_id, other_parent, finished=False)

    assert settle_uncounted_trials(parent, {counted}) == 2

    state = {
        run_id: client.get_run(run_id)
        for run_id in (counted, cancelled_after_recording, killed_while_recording, elsewhere)
    }
    assert "tweetops.tune.trial_state" not in state[counted].data.tags
    assert state[counted].info.status == "FINISHED"
    assert state[cancelled_after_recording].data.tags["tweetops.tune.trial_state"] == "uncounted"
    assert state[cancelled_after_recording].info.status == "FINISHED"
    assert state[killed_while_recording].data.tags["tweetops.tune.trial_state"] == "uncounted"
    assert state[killed_while_recording].info.status == "KILLED"
    # another search's trials are not touched
    assert state[elsewhere].info.status == "RUNNING"
    assert "tweetops.tune.trial_state" not in state[elsewhere].data.tags
