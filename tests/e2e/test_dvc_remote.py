"""Snapshots travel through a DVC remote: push, lose everything local, pull identical files."""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import copy_project, run, user_env

pytestmark = pytest.mark.slow


def _digests(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def test_push_delete_pull_gives_identical_snapshot(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "tweetops",
                           ingest={"n_tweets": 1500, "n_users": 150, "tweets_per_file": 400})
    env = user_env(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com",
                   GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com")
    dvc = [sys.executable, "-m", "dvc"]
    run(["git", "init", "-q"], cwd=project, env=env)
    run(["git", "add", "-A"], cwd=project, env=env)
    run(["git", "commit", "-qm", "clone"], cwd=project, env=env)

    run([*dvc, "repro", "ingest"], cwd=project, env=env)
    snapshot = project / "data" / "raw"
    before = _digests(snapshot)
    parts = [name for name in before if name.startswith("tweets/") and name.endswith(".jsonl")]
    assert len(parts) == 4  # 1500 tweets, 400 per file
    assert "tweets/_COMPLETE.json" in before  # the marker travels with the snapshot
    assert any(name.startswith("manifests/") for name in before)

    remote = tmp_path / "remote"
    run([*dvc, "remote", "add", "-d", "storage", str(remote)], cwd=project, env=env)
    pushed = run([*dvc, "push"], cwd=project, env=env)
    assert "pushed" in pushed.stdout
    assert any(path.is_file() for path in remote.rglob("*"))

    shutil.rmtree(snapshot)
    shutil.rmtree(project / ".dvc" / "cache")
    run([*dvc, "pull", "ingest"], cwd=project, env=env)
    assert _digests(snapshot) == before
    status = run([*dvc, "status", "ingest"], cwd=project, env=env)
    assert "up to date" in status.stdout
