"""DVC experiments never move production aliases: they register a version tagged with their name.

`dvc exp run` gives each stage it runs the experiment's name in DVC_EXP_NAME; the e2e test in
tests/e2e/test_dvc_experiments.py runs the real `dvc exp run`, this one the same steps in-process.
"""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import FeaturedProject
from tweetops import registry
from tweetops.promote import promote
from tweetops.train import train

pytestmark = pytest.mark.slow

NAME = "tweet-engagement"


def test_an_experiment_registers_a_tagged_version_and_moves_no_alias(
    featured_project: FeaturedProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = featured_project
    mediocre = project.settings("train.num_trees=3", "train.max_depth=3")
    train(mediocre)
    assert promote(mediocre).promoted  # the main workspace: v1 becomes champion

    monkeypatch.setenv("DVC_EXP_NAME", "deeper")
    better = project.settings("train.num_trees=30", "train.max_depth=10")
    trained = train(better)
    result = promote(better)

    client = MlflowClient()
    assert result.version == "2" and not result.promoted
    assert result.champion_after == "1"
    assert result.reason.startswith("DVC experiment deeper: registered only, no alias moved")
    assert "would be promoted" in result.reason  # the gate's verdict is kept
    assert registry.aliases(client, NAME) == {"champion": "1", "challenger": "1"}
    assert result.summary().startswith(
        "promote: tweet-engagement v2 registered for DVC experiment deeper; champion is v1"
    )
    assert client.get_model_version(NAME, "2").tags["tweetops.dvc_experiment"] == "deeper"
    # its runs carry the experiment's name, as a tag and in the run name
    for step in ("train", "promote"):
        (run,) = client.search_runs(
            [client.get_run(trained.run_id).info.experiment_id],
            filter_string=(
                f"tags.`tweetops.step` = '{step}' and tags.`tweetops.dvc_experiment` = 'deeper'"
            ),
        )
        assert run.info.run_name.endswith(" exp:deeper")
    assert client.get_run(trained.run_id).data.tags["tweetops.dvc_experiment"] == "deeper"

    # back in the main workspace, `tweetops promote` promotes that version
    monkeypatch.delenv("DVC_EXP_NAME")
    again = promote(better)
    assert again.version == "2" and again.promoted and again.champion_after == "2"
    assert registry.aliases(client, NAME) == {"champion": "2", "challenger": "2"}
