"""kill -9 at every point of a snapshot swap: the next run finishes it forward, byte for byte.

The ingest runs as a real process that kills itself with SIGKILL right after its n-th rename of
the swap (the journal's is the first): a deterministic kill -9 at each point, no debug knob.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Project
from tests.support.snapshots import snapshot_hashes
from tweetops.ingest import staging
from tweetops.ingest.step import ingest
from tweetops.markers import read_marker

pytestmark = pytest.mark.slow

RAW = Path("data/raw")
FOLDERS = (RAW / "tweets", RAW / "manifests", RAW / "quarantine")
OLD = ("ingest.n_tweets=300", "ingest.n_users=40", "ingest.tweets_per_file=100")
NEW = ("ingest.n_tweets=120", "ingest.n_users=30", "ingest.tweets_per_file=50", "ingest.seed=7")
MOVES_PER_SWAP = 7  # the journal, then each folder aside and its staging folder in

# `python -c KILLED_AFTER_MOVES <n> <tweetops args...>`: SIGKILL right after the n-th rename
KILLED_AFTER_MOVES = """
import os, runpy, signal, sys
from tweetops.ingest import staging
limit, done, move = int(sys.argv[1]), 0, staging._move
def move_then_die(source, target):
    global done
    if limit == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    move(source, target)
    done += 1
    if done == limit:
        os.kill(os.getpid(), signal.SIGKILL)
staging._move = move_then_die
sys.argv = ["tweetops", *sys.argv[2:]]
runpy.run_module("tweetops", run_name="__main__")
"""


def _killed_ingest(project: Project, after_moves: int, *overrides: str) -> None:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{project.root / 'mlflow.db'}"}
    args = [sys.executable, "-c", KILLED_AFTER_MOVES, str(after_moves), "ingest"]
    done = subprocess.run(
        [*args, *(f"-S{o}" for o in overrides)],
        cwd=project.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr


def test_kill_9_at_each_point_of_the_swap_then_recovery_gives_one_whole_snapshot(
    project: Project,
) -> None:
    ingest(project.settings(*NEW))
    new = snapshot_hashes()
    ingest(project.settings(*OLD))
    old = snapshot_hashes()

    for after_moves in range(MOVES_PER_SWAP + 1):
        _killed_ingest(project, after_moves, *NEW)
        # before recovery a reader sees the old tweets, marked, or no tweets folder at all
        tweets = read_marker(FOLDERS[0])
        assert tweets is None or tweets["counts"]["tweets"] == (120 if after_moves == 7 else 300)
        staging.recover(staging.live_folders(FOLDERS))
        # the journal written: the new snapshot was whole, so the swap is finished forward
        assert snapshot_hashes() == (new if after_moves else old), after_moves
        assert not staging.journal_path(FOLDERS).exists()
        assert not list(RAW.glob(".*.old"))
        ingest(project.settings(*OLD))
        assert snapshot_hashes() == old


def test_kill_9_mid_swap_with_the_new_tweets_not_whole_is_rolled_back(project: Project) -> None:
    ingest(project.settings(*OLD))
    old = snapshot_hashes()
    _killed_ingest(project, 3, *NEW)  # the journal written, the quarantine swapped
    (staging.staging_dir(FOLDERS[0]) / "_COMPLETE.json").unlink()  # the new tweets not whole

    staging.recover(staging.live_folders(FOLDERS))

    assert snapshot_hashes() == old
    assert read_marker(FOLDERS[0]) is not None and not staging.journal_path(FOLDERS).exists()
