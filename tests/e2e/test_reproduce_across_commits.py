"""`tweetops reproduce` of a run made by an older commit: the code is checked out into a
temporary git worktree and the data version out of the DVC cache, in a real git + DVC clone."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.e2e.conftest import DVC, commit_clone, copy_project, git_user_env, run
from tests.support.cli import run_cli_process

pytestmark = pytest.mark.slow

FOREST = Path("src/tweetops/model/pipeline.py")
# the second commit changes a default of the forest that no setting reaches
OLD_DEFAULT = "                seed=config.seed,\n"
NEW_DEFAULT = "                seed=config.seed,\n                bootstrap=False,\n"


def _train_run(project: Path) -> dict[str, object]:
    written: dict[str, object] = json.loads((project / "reports/train_run.json").read_text())
    return written


def _rmse(client: MlflowClient, run_id: object) -> float:
    return client.get_run(str(run_id)).data.metrics["rmse"]


def _git(project: Path, env: dict[str, str], *args: str) -> str:
    return run(["git", *args], cwd=project, env=env).stdout.strip()


def test_a_run_of_an_older_commit_is_reproduced_from_that_commit_and_its_data(
    tmp_path: Path,
) -> None:
    project = copy_project(
        tmp_path / "tweetops",
        ingest={"n_tweets": 600, "n_users": 80},
        train={"num_trees": 8, "max_depth": 5},
        spark={"ui_enabled": False, "shuffle_partitions": 2},
    )
    # the user installed tweetops from this clone (`pip install -e .`): its src/ is the code
    env = {**git_user_env(), "PYTHONPATH": str(project / "src")}
    commit_clone(project, env)
    first_commit = _git(project, env, "rev-parse", "HEAD")
    run([*DVC, "repro", "train"], cwd=project, env=env, timeout=1200)
    original = _train_run(project)
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    original_run = client.get_run(str(original["run_id"]))
    assert original_run.data.tags["tweetops.git_commit"] == first_commit

    # second commit: a changed train default, retrained on the same data (the control)
    forest = (project / FOREST).read_text()
    assert OLD_DEFAULT in forest
    (project / FOREST).write_text(forest.replace(OLD_DEFAULT, NEW_DEFAULT, 1))
    _git(project, env, "add", "-A")
    _git(project, env, "commit", "-qm", "coarser forest leaves by default")
    second_commit = _git(project, env, "rev-parse", "HEAD")
    run([*DVC, "repro", "train"], cwd=project, env=env, timeout=1200)
    retrained = _train_run(project)
    assert retrained["run_id"] != original["run_id"]
    assert _rmse(client, retrained["run_id"]) != _rmse(client, original["run_id"])

    # the workspace's data moves on too (more tweets, params.yaml not committed)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["ingest"]["n_tweets"] = 700
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run([*DVC, "repro", "features"], cwd=project, env=env, timeout=1200)

    # uncommitted code is not any commit's code: one sentence, nothing trained
    (project / FOREST).write_text(forest)
    refused = run_cli_process(project, "reproduce", str(original["run_id"]), env=env, timeout=600)
    assert refused.returncode == 2, refused.stderr[-3000:]
    errors = [line for line in refused.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "has uncommitted changes" in errors[0], refused.stderr
    assert first_commit[:12] in errors[0]
    _git(project, env, "checkout", "--", str(FOREST))
    status_before = _git(project, env, "status", "--porcelain", "--untracked-files=no")

    done = run(
        [sys.executable, "-m", "tweetops", "reproduce", str(original["run_id"])],
        cwd=project,
        env=env,
        timeout=1200,
    )

    comparison = json.loads(
        (project / "reports/reproduce" / str(original["run_id"]) / "comparison.json").read_text()
    )
    assert comparison["original_run_id"] == original["run_id"]
    assert comparison["metrics"]["rmse"]["original"] == _rmse(client, original["run_id"])
    assert comparison["metrics"]["rmse"]["reproduced"] == _rmse(client, original["run_id"])
    assert all(metric["same"] for metric in comparison["metrics"].values()), comparison
    reproduced_run = client.get_run(comparison["run_id"])
    assert reproduced_run.data.tags["tweetops.reproduce.of"] == original["run_id"]
    assert reproduced_run.data.tags["tweetops.git_commit"] == first_commit
    assert (
        reproduced_run.data.tags["tweetops.data.training.dvc_md5"]
        == original_run.data.tags["tweetops.data.training.dvc_md5"]
    )
    output = done.stdout + done.stderr
    assert f"code of commit {first_commit[:12]} in a git worktree" in output
    assert "checked out of the DVC cache" in output
    # the user's own checkout is untouched: same commit, same changes, no worktree left
    assert _git(project, env, "rev-parse", "HEAD") == second_commit
    assert _git(project, env, "status", "--porcelain", "--untracked-files=no") == status_before
    assert NEW_DEFAULT in (project / FOREST).read_text()
    assert len(_git(project, env, "worktree", "list").splitlines()) == 1
    assert _train_run(project)["run_id"] == retrained["run_id"]
