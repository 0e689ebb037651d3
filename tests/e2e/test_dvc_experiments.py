"""DVC users compare runs: `dvc exp show`, `dvc metrics diff` and `dvc plots diff` see them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from tests.e2e.conftest import DVC, commit_clone, copy_project, git_user_env, run

pytestmark = pytest.mark.slow


def _values(node: Any, key: str) -> Iterator[Any]:
    if isinstance(node, dict):
        for name, value in node.items():
            if name == key and not isinstance(value, dict | list):
                yield value
            else:
                yield from _values(value, key)
    elif isinstance(node, list):
        for item in node:
            yield from _values(item, key)


@pytest.mark.timeout(2400)  # three pipeline runs, slow on a shared machine
def test_two_dvc_experiments_show_their_metrics_and_plots(tmp_path: Path) -> None:
    project = copy_project(
        tmp_path / "tweetops",
        ingest={"n_tweets": 2000, "n_users": 200},
        train={"num_trees": 10},
        spark={"ui_enabled": False},
    )
    env = git_user_env()
    commit_clone(project, env)
    run([*DVC, "repro"], cwd=project, env=env)
    # the metrics, reports and plot tables DVC declares are committed with dvc.lock
    run(["git", "add", "-A"], cwd=project, env=env)
    tracked = run(["git", "diff", "--cached", "--name-only"], cwd=project, env=env).stdout
    for path in (
        "dvc.lock",
        "reports/metrics.json",
        "reports/promotion.json",
        "reports/train_run.json",
        "reports/plots/predictions.csv",
        "reports/plots/feature_importance.csv",
    ):
        assert path in tracked.split(), tracked
    run(["git", "commit", "-qm", "baseline"], cwd=project, env=env)
    baseline_rmse = json.loads((project / "reports/metrics.json").read_text())["rmse"]

    committed_params = (project / "params.yaml").read_text()
    rmse = {}
    for name, trees in (("few", 4), ("more", 16)):
        done = run(
            [*DVC, "exp", "run", "-n", name, "-S", f"train.num_trees={trees}"], cwd=project, env=env
        )
        output = done.stdout + done.stderr
        rmse[name] = json.loads((project / "reports/metrics.json").read_text())["rmse"]
        # only what the change reaches reruns: `-S` keeps the other sections as committed
        assert "Running stage 'train'" in output
        assert "Running stage 'ingest'" not in output, output
        assert "Running stage 'features'" not in output, output
    assert (
        (project / "params.yaml").read_text().count("$data.")
        == committed_params.count("$data.")
        > 0
    )
    assert len({baseline_rmse, *rmse.values()}) == 3

    shown = json.loads(run([*DVC, "exp", "show", "--json"], cwd=project, env=env).stdout)
    shown_rmse = set(_values(shown, "rmse"))
    assert {baseline_rmse, *rmse.values()} <= shown_rmse
    assert "!" not in json.dumps(shown)

    diff = json.loads(run([*DVC, "metrics", "diff", "HEAD", "--json"], cwd=project, env=env).stdout)
    change = diff["reports/metrics.json"]["rmse"]
    assert change["old"] == baseline_rmse and change["new"] == rmse["more"]

    plots = json.loads(run([*DVC, "plots", "diff", "HEAD", "--json"], cwd=project, env=env).stdout)
    text = json.dumps(plots)
    assert "predictions.csv" in text and "feature_importance.csv" in text
    assert "workspace" in text and "HEAD" in text

    # MLflow: runs of one `dvc repro` / `dvc exp run` share a pipeline_run tag, and only those
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tweetops")
    groups: dict[str, list[tuple[str, str | None]]] = {}
    for found in client.search_runs([experiment.experiment_id]):
        groups.setdefault(found.data.tags["tweetops.pipeline_run"], []).append(
            (found.data.tags["tweetops.step"], found.data.params.get("train.num_trees"))
        )
    assert len(groups) == 3
    trees = set()
    for steps in groups.values():
        names = [name for name, _ in steps]
        assert names.count("train") == 1 and names.count("promote") == 1
        trees.add(next(value for name, value in steps if name == "train"))
    assert trees == {"10", "4", "16"}
