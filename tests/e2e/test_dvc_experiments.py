"""`dvc repro` runs the chain once in a git clone; DVC users then compare experiments:
`dvc exp show`, `dvc metrics diff` and `dvc plots diff` see them.

One test, as a user goes: the baseline `dvc repro` it needs is the chain `dvc repro` runs, so the
chain is checked there instead of being run a second time in a test of its own."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from tests.e2e.conftest import DVC, commit_clone, copy_project, git_user_env, run
from tweetops import registry

pytestmark = pytest.mark.slow
SCREEN_COLUMNS = 160

STAGES = ("ingest", "features", "train", "promote")


def _single(values: Iterator[Any]) -> Any:
    found = list(values)
    assert len(found) == 1, found
    return found[0]


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
    first = run([*DVC, "repro"], cwd=project, env=env)
    for stage in STAGES:
        assert f"Running stage '{stage}'" in first.stdout
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    assert set(lock["stages"]) == set(STAGES)
    raw_out = lock["stages"]["ingest"]["outs"][0]
    assert raw_out["path"] == "data/raw" and raw_out["md5"].endswith(".dir")
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    assert metrics["rmse"] < metrics["baseline_rmse"]
    assert json.loads((project / "reports" / "promotion.json").read_text())["promoted"] is True

    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tweetops")
    runs_after_first = len(client.search_runs([experiment.experiment_id]))
    assert runs_after_first == len(STAGES)
    train_run = client.get_run(
        json.loads((project / "reports/train_run.json").read_text())["run_id"]
    )
    # the run records the git commit of the clone and the DVC hash of the data it read
    head = run(["git", "rev-parse", "HEAD"], cwd=project, env=env).stdout.strip()
    assert train_run.data.tags["tweetops.git_commit"] == head
    training_dep = next(
        dep for dep in lock["stages"]["train"]["deps"] if dep["path"] == "data/features/training"
    )
    assert train_run.data.tags["tweetops.data.training.dvc_md5"] == training_dep["md5"]

    # a second `dvc repro` does nothing: no stage, no run
    second = run([*DVC, "repro"], cwd=project, env=env)
    assert "Running stage" not in second.stdout and "up to date" in second.stdout
    assert len(client.search_runs([experiment.experiment_id])) == runs_after_first

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

    # independent experiments, as the README queues them: each changes one setting of HEAD
    # and runs in its own temporary copy, so the tracking store is named by absolute path
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{project / 'mlflow.db'}"
    committed_params = (project / "params.yaml").read_text()
    for name, change in (("few", "train.num_trees=4"), ("shallow", "train.max_depth=3")):
        run([*DVC, "exp", "run", "--queue", "-n", name, "-S", change], cwd=project, env=env)
    assert (project / "params.yaml").read_text() == committed_params  # queued, not applied
    done = run([*DVC, "exp", "run", "--run-all"], cwd=project, env=env, timeout=1800)
    logs = {
        name: run([*DVC, "queue", "logs", name], cwd=project, env=env).stdout
        for name in ("few", "shallow")
    }
    for name, output in logs.items():
        # only what the change reaches reruns: `-S` keeps the other sections as committed
        assert "Running stage 'train'" in output, (name, output, done.stdout, done.stderr)
        assert "Running stage 'promote'" in output, output
        assert "Running stage 'ingest'" not in output, output
        assert "Running stage 'features'" not in output, output

    shown = json.loads(run([*DVC, "exp", "show", "--json"], cwd=project, env=env).stdout)
    assert "!" not in json.dumps(shown)
    rmse = {
        experiment["name"]: _single(_values(experiment, "rmse"))
        for baseline in shown
        for experiment in baseline.get("experiments") or []
    }
    assert set(rmse) == {"few", "shallow"}
    assert len({baseline_rmse, *rmse.values()}) == 3

    # `dvc exp show`: the four metrics, numbers only; each row's params and MLflow training run
    table = list(
        csv.DictReader(
            io.StringIO(run([*DVC, "exp", "show", "--csv"], cwd=project, env=env).stdout)
        )
    )
    metric_columns = ["rmse", "r2", "mae", "baseline_rmse"]
    header = list(table[0])
    assert header[header.index("rmse") : header.index("rmse") + 4] == metric_columns
    assert not {"reason", "model_name", "champion_after", "promoted"} & set(header)
    rows = {row["Experiment"]: row for row in table if row["Experiment"]}
    assert set(rows) == {"few", "shallow"}
    for row in table:
        for column in metric_columns:
            float(row[column])  # numbers, in every row
    # independent experiments: each changed one setting against HEAD
    assert (rows["few"]["train.num_trees"], rows["few"]["train.max_depth"]) == ("4", "8")
    assert (rows["shallow"]["train.num_trees"], rows["shallow"]["train.max_depth"]) == ("10", "3")

    # `dvc exp show` as a user reads it in a 160-column terminal: DVC renders the table whole
    # and pages it through `less --chop-long-lines`, which shows each line's first 160 columns
    # (here no terminal, so no pager: the same table on stdout, chopped as less would)
    paged = run([*DVC, "exp", "show"], cwd=project, env={**env, "COLUMNS": "160"}).stdout
    screen = [line[:SCREEN_COLUMNS] for line in paged.splitlines()]
    shown_columns = [*metric_columns, "mlflow_run", "train.num_trees", "train.max_depth"]
    header = next(line.split() for line in screen if "Experiment" in line)
    start = header.index("rmse")
    assert header[start : start + len(shown_columns)] == shown_columns, screen
    for name, row in rows.items():
        [line] = [line.split() for line in screen if f"[{name}]" in line]
        at = line.index(row["mlflow_run"])  # the training run, after the four metrics
        for cell, column in zip(line[at - 4 : at], metric_columns, strict=True):
            assert math.isclose(float(cell), float(row[column]), rel_tol=1e-4), (name, line)
        # the changed param and the other, whole: no cell cut to `…`
        assert line[at + 1 : at + 3] == [row["train.num_trees"], row["train.max_depth"]], line

    diff = json.loads(
        run([*DVC, "exp", "diff", "HEAD", "shallow", "--json"], cwd=project, env=env).stdout
    )
    change = diff["metrics"]["reports/metrics.json"]["rmse"]
    assert change["old"] == baseline_rmse and change["new"] == rmse["shallow"]

    # `dvc plots diff`: exactly the intended charts, revisions told apart; tune's loss chart
    # has nothing to draw, as no revision here ran tune
    shown_plots = run(
        [*DVC, "plots", "diff", "HEAD", "few", "shallow", "--json"], cwd=project, env=env
    ).stdout
    plots = json.loads(shown_plots)["data"]
    assert {path: len(charts) for path, charts in plots.items()} == {
        "reports/plots/predictions.csv": 1,
        "reports/plots/feature_importance.csv": 1,
        "reports/plots/tune_trials.csv": 0,
    }
    scatter = json.dumps(plots["reports/plots/predictions.csv"])
    assert "y = x: a perfect prediction" in scatter  # the identity line layer
    assert all(revision in scatter for revision in ("HEAD", "few", "shallow"))
    assert '"sort": "-x"' in json.dumps(plots["reports/plots/feature_importance.csv"])

    # MLflow: grouping runs by the DVC experiment gives one group per `dvc exp show` row
    groups: dict[str, dict[str, Run]] = {}
    for found in client.search_runs([experiment.experiment_id]):
        group = groups.setdefault(found.data.tags.get("tweetops.dvc_experiment", ""), {})
        group[found.data.tags["tweetops.step"]] = found
    assert set(groups) == {"", "few", "shallow"}
    for name, row in rows.items():
        train_run = groups[name]["train"]
        # the row names its training run: the first characters of its id, which MLflow's
        # runs search takes
        assert row["mlflow_run"] == train_run.info.run_id[:8]
        [found] = client.search_runs(
            [experiment.experiment_id],
            filter_string=f"attributes.run_id LIKE '{row['mlflow_run']}%'",
        )
        assert found.info.run_id == train_run.info.run_id
        assert train_run.info.run_name.endswith(f" exp:{name}")
        assert "promote" in groups[name]
    # experiments register versions tagged with their name; no production alias moved
    assert registry.aliases(client, "tweet-engagement") == {"champion": "1", "challenger": "1"}
    tagged = {
        version.tags.get("tweetops.dvc_experiment")
        for version in client.search_model_versions("name = 'tweet-engagement'")
    }
    assert tagged == {None, "few", "shallow"}

    # `dvc metrics diff` in an 80-column terminal: one row per metric, numbers only, uncut
    run([*DVC, "exp", "apply", "shallow"], cwd=project, env=env)
    shown_diff = run([*DVC, "metrics", "diff"], cwd=project, env={**env, "COLUMNS": "80"}).stdout
    lines = [line.rstrip() for line in shown_diff.splitlines() if line.strip()]
    assert all(len(line) <= 80 and "…" not in line for line in lines), shown_diff
    diff_rows = {line.split()[1]: line.split()[2:] for line in lines[1:]}
    # the unchanged baseline_rmse (same rows, same split) is left out, as DVC does by default
    assert {"rmse", "r2", "mae"} <= set(diff_rows) <= set(metric_columns), shown_diff
    old_rmse, new_rmse, change = (float(cell) for cell in diff_rows["rmse"])
    assert math.isclose(old_rmse, baseline_rmse, rel_tol=1e-4)
    assert math.isclose(new_rmse, rmse["shallow"], rel_tol=1e-4)
    assert math.isclose(change, new_rmse - old_rmse, rel_tol=1e-3, abs_tol=1e-4)
