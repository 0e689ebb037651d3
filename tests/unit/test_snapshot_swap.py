"""The swap of a snapshot with its manifests and quarantine is one unit: all of it or none."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from tests.conftest import Project
from tests.support.snapshots import snapshot_hashes
from tweetops.errors import TweetopsError
from tweetops.ingest import staging
from tweetops.ingest.step import ingest

RAW = Path("data/raw")
FOLDERS = (RAW / "tweets", RAW / "manifests", RAW / "quarantine")
OLD = ("ingest.n_tweets=300", "ingest.n_users=40", "ingest.tweets_per_file=100")
NEW = ("ingest.n_tweets=120", "ingest.n_users=30", "ingest.tweets_per_file=50", "ingest.seed=7")
# the journal, then each folder aside and its staging folder in, quarantine first, tweets last
MOVES_PER_SWAP = 7
CHECKED_MOVES = (1, 4, MOVES_PER_SWAP)


def _only_snapshot_folders_left() -> bool:
    return sorted(p.name for p in RAW.iterdir() if not p.name.endswith(".staging")) == [
        "manifests",
        "quarantine",
        "tweets",
    ]


@pytest.mark.parametrize(
    "failing_move",
    # `make check` fails the first move, one in the middle and the last; `make test` every one
    [
        move if move in CHECKED_MOVES else pytest.param(move, marks=pytest.mark.slow)
        for move in range(1, MOVES_PER_SWAP + 1)
    ],
)
def test_a_rename_failing_at_any_point_of_the_swap_puts_every_folder_back(
    project: Project, monkeypatch: pytest.MonkeyPatch, failing_move: int
) -> None:
    ingest(project.settings(*NEW))
    new = snapshot_hashes()
    ingest(project.settings(*OLD))
    old = snapshot_hashes()
    assert new != old

    moves = 0
    move = staging._move

    def full_disk_at_one_move(source: Path, target: Path) -> None:
        nonlocal moves
        moves += 1
        if moves == failing_move:
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
        move(source, target)

    monkeypatch.setattr(staging, "_move", full_disk_at_one_move)
    with pytest.raises(TweetopsError, match=r"could not be swapped in \(No space left on device"):
        ingest(project.settings(*NEW))
    assert snapshot_hashes() == old  # marked complete, as before
    assert not staging.journal_path(FOLDERS).exists() and _only_snapshot_folders_left()

    monkeypatch.setattr(staging, "_move", move)
    ingest(project.settings(*NEW))
    assert snapshot_hashes() == new
    assert _only_snapshot_folders_left() and not list(RAW.glob(".*.staging"))


def test_a_crashed_swap_whose_new_snapshot_is_not_whole_is_undone(project: Project) -> None:
    ingest(project.settings(*OLD))
    old = snapshot_hashes()
    # a new snapshot staged without its completion marker, the quarantine already swapped
    for folder in FOLDERS:
        staging.staging_dir(folder).mkdir()
    (staging.staging_dir(FOLDERS[0]) / "new-part-00000.jsonl").write_bytes(b'{"id": "1"}\n')
    # the journal as the previous version wrote it: the folders only
    staging.journal_path(FOLDERS).write_text(json.dumps([str(f) for f in FOLDERS]))
    (RAW / "quarantine").replace(staging.retired_dir(RAW / "quarantine"))
    staging.staging_dir(RAW / "quarantine").replace(RAW / "quarantine")

    staging.recover(FOLDERS)

    assert snapshot_hashes() == old
    assert not staging.journal_path(FOLDERS).exists() and _only_snapshot_folders_left()


def test_an_unreadable_journal_undoes_the_swap(project: Project) -> None:
    ingest(project.settings(*OLD))
    old = snapshot_hashes()
    for folder in FOLDERS:
        staging.staging_dir(folder).mkdir()
    (RAW / "manifests").replace(staging.retired_dir(RAW / "manifests"))
    staging.journal_path(FOLDERS).write_bytes(b"\x00\x00")

    staging.recover(FOLDERS)

    assert snapshot_hashes() == old and _only_snapshot_folders_left()
