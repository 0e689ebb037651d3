"""Snapshots travel through a DVC remote: push, lose everything local, pull identical files."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from tests.e2e.conftest import DVC, commit_clone, copy_project, git_user_env, run

pytestmark = pytest.mark.slow


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_push_delete_pull_gives_identical_snapshot(tmp_path: Path) -> None:
    project = copy_project(
        tmp_path / "tweetops", ingest={"n_tweets": 1500, "n_users": 150, "tweets_per_file": 400}
    )
    env = git_user_env()
    commit_clone(project, env)

    run([*DVC, "repro", "ingest"], cwd=project, env=env)
    snapshot = project / "data" / "raw"
    before = _digests(snapshot)
    parts = [name for name in before if name.startswith("tweets/") and name.endswith(".jsonl")]
    assert len(parts) == 4  # 1500 tweets, 400 per file
    assert "tweets/_COMPLETE.json" in before  # the marker travels with the snapshot
    assert any(name.startswith("manifests/") for name in before)

    remote = tmp_path / "remote"
    run([*DVC, "remote", "add", "-d", "storage", str(remote)], cwd=project, env=env)
    pushed = run([*DVC, "push"], cwd=project, env=env)
    assert "pushed" in pushed.stdout
    assert any(path.is_file() for path in remote.rglob("*"))

    shutil.rmtree(snapshot)
    shutil.rmtree(project / ".dvc" / "cache")
    run([*DVC, "pull", "ingest"], cwd=project, env=env)
    assert _digests(snapshot) == before
    status = run([*DVC, "status", "ingest"], cwd=project, env=env)
    assert "up to date" in status.stdout
