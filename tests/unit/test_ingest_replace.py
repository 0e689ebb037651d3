"""A failed ingest never destroys the snapshot; limits and the quarantine's original bytes."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from pathlib import Path

import orjson
import pytest
from filelock import FileLock

from tests.conftest import Project
from tests.support.snapshots import RECORDS, snapshot_hashes
from tweetops import locks
from tweetops.errors import TweetopsError
from tweetops.ingest import staging
from tweetops.ingest.replay import MAX_LINE_BYTES
from tweetops.ingest.snapshot import iter_part_records, part_files
from tweetops.ingest.step import IngestResult, ingest
from tweetops.ingest.xapi import retry as xapi_retry
from tweetops.ingest.xapi.retry import RetryPolicy
from tweetops.markers import read_marker, require_complete

RAW = Path("data/raw")
TWEETS = RAW / "tweets"
SNAPSHOT = ("ingest.n_tweets=300", "ingest.n_users=40", "ingest.tweets_per_file=100")


@pytest.fixture
def good_snapshot(project: Project) -> dict[str, str]:
    """A complete synthetic snapshot of 300 tweets, and the sha256 of each of its files."""
    ingest(project.settings(*SNAPSHOT))
    hashes = snapshot_hashes()
    assert len(part_files(TWEETS)) == 3 and "tweets/_COMPLETE.json" in hashes
    return hashes


@pytest.fixture
def unreachable_api(monkeypatch: pytest.MonkeyPatch) -> str:
    """The base URL of an X API nobody listens on, with a token and a fast retry policy."""
    monkeypatch.setenv("X_BEARER_TOKEN", "xtest-token-for-an-api-that-is-not-there")
    monkeypatch.setattr(
        xapi_retry, "RETRY_POLICY", RetryPolicy(attempts=2, backoff_base=0.01, backoff_cap=0.01)
    )
    return "http://127.0.0.1:9"


def _replay(project: Project, archive: Path, *overrides: str):
    return project.settings("ingest.source=replay", f"ingest.path={archive}", *overrides)


def test_search_against_an_unreachable_api_keeps_the_snapshot(
    project: Project, good_snapshot: dict[str, str], unreachable_api: str
) -> None:
    settings = project.settings("ingest.source=search", f"ingest.api_base_url={unreachable_api}")
    with pytest.raises(TweetopsError):
        ingest(settings)
    assert snapshot_hashes() == good_snapshot


def test_a_replay_of_garbage_is_an_error_and_keeps_the_snapshot(
    project: Project, good_snapshot: dict[str, str], tmp_path: Path
) -> None:
    archive = tmp_path / "garbage.jsonl"
    archive.write_bytes(b'not json\n{"half": \n[1, 2]\n')
    with pytest.raises(TweetopsError, match=r"accepted no tweets \(3 quarantined.*was kept"):
        ingest(_replay(project, archive))
    assert snapshot_hashes() == good_snapshot

    ingest(_replay(project, archive, "ingest.allow_empty=true"))  # asked for: empty it is
    assert part_files(TWEETS) == []
    assert read_marker(TWEETS)["counts"]["tweets"] == 0
    assert len(list((RAW / "quarantine").glob("*.jsonl"))) == 1


def test_replace_swaps_in_a_complete_snapshot_and_leaves_nothing_beside_it(
    project: Project, good_snapshot: dict[str, str]
) -> None:
    result = ingest(project.settings("ingest.n_tweets=50", "ingest.seed=3"))
    assert result.counts.accepted == 50
    assert len(list(iter_part_records(TWEETS))) == 50
    assert [path.name for path in result.files] == [p.name for p in part_files(TWEETS)]
    assert result.manifest_path.parent == RAW / "manifests" and result.manifest_path.exists()
    assert require_complete(TWEETS, produced_by="ingest")["counts"]["tweets"] == 50
    assert sorted(p.name for p in RAW.iterdir()) == ["manifests", "quarantine", "tweets"]


def test_a_leftover_staging_folder_is_discarded_by_the_next_run(
    project: Project, good_snapshot: dict[str, str]
) -> None:
    leftover = staging.staging_dir(TWEETS)
    leftover.mkdir()
    (leftover / "killed-part-00000.jsonl").write_bytes(orjson.dumps(RECORDS[0]) + b"\n")
    ingest(project.settings(*SNAPSHOT))
    assert not leftover.exists()
    assert snapshot_hashes() == good_snapshot  # same seed: the same bytes, the leftover gone


def test_a_swap_cut_short_by_a_crash_is_finished_by_the_next_run(
    project: Project, good_snapshot: dict[str, str]
) -> None:
    folders = (TWEETS, RAW / "manifests", RAW / "quarantine")
    # a complete new snapshot staged, the journal written, then a crash after the first rename
    for folder in folders:
        staging.staging_dir(folder).mkdir()
    new_part = staging.staging_dir(TWEETS) / "new-part-00000.jsonl"
    new_part.write_bytes(orjson.dumps(RECORDS[0]) + b"\n")
    (staging.staging_dir(TWEETS) / "_COMPLETE.json").write_text('{"step": "ingest"}')
    staging.journal_path(folders).write_text(json.dumps([str(f) for f in folders]))
    (RAW / "quarantine").replace(staging.retired_dir(RAW / "quarantine"))
    staging.staging_dir(RAW / "quarantine").replace(RAW / "quarantine")

    staging.recover(folders)

    assert [p.name for p in part_files(TWEETS)] == ["new-part-00000.jsonl"]
    assert not staging.journal_path(folders).exists()
    assert sorted(p.name for p in RAW.iterdir()) == ["manifests", "quarantine", "tweets"]


def test_append_adds_a_batch_and_marks_the_snapshot_complete_again(
    project: Project, good_snapshot: dict[str, str]
) -> None:
    result = ingest(
        project.settings(
            "ingest.mode=append",
            "ingest.n_tweets=40",
            "ingest.seed=9",
            "ingest.tweets_per_file=100",
        )
    )
    assert result.counts.accepted == 40
    assert len(list(iter_part_records(TWEETS))) == 340
    assert read_marker(TWEETS)["counts"] == {
        "tweets": 340,
        "accepted": 40,
        "quarantined": 0,
        "duplicate": 0,
    }
    # the same batch again: all duplicates, and nothing of the first one overwritten
    again = ingest(project.settings("ingest.mode=append", "ingest.n_tweets=40", "ingest.seed=9"))
    assert (again.counts.accepted, again.counts.duplicate) == (0, 40)
    assert len(list(iter_part_records(TWEETS))) == 340


def test_a_huge_text_is_quarantined_at_ingest_with_the_limit_as_reason(
    project: Project, tmp_path: Path
) -> None:
    long_text = {**RECORDS[1], "text": "x" * 30_000}
    many_tags = {
        **RECORDS[2],
        "entities": {"hashtags": [{"start": 0, "end": 2, "tag": "a"}] * 2_000},
    }
    huge_line = orjson.dumps({**RECORDS[3], "text": "x" * (MAX_LINE_BYTES + 10)})
    archive = tmp_path / "limits.jsonl"
    archive.write_bytes(
        b"\n".join(
            [orjson.dumps(RECORDS[0]), orjson.dumps(long_text), orjson.dumps(many_tags), huge_line]
        )
        + b"\n"
    )
    result = ingest(_replay(project, archive))
    assert (result.counts.accepted, result.counts.quarantined) == (1, 3)
    entries = [
        orjson.loads(line)
        for path in (RAW / "quarantine").glob("*.jsonl")
        for line in path.read_bytes().splitlines()
    ]
    reasons = {entry["location"].rsplit(":", 1)[1]: entry["reason"] for entry in entries}
    assert reasons["2"] == "text: String should have at most 25000 characters"
    assert reasons["3"].startswith("entities.hashtags: List should have at most 1000 items")
    assert reasons["4"].startswith(
        f"line is {len(huge_line) + 1:,} bytes, over the {MAX_LINE_BYTES:,}"
    )


def test_a_line_that_is_not_utf8_keeps_its_original_bytes(project: Project, tmp_path: Path) -> None:
    broken = b'{"id": "1", "text": "caf\xe9 \xff\xfe", "lang": "fr"'
    archive = tmp_path / "latin1.jsonl"
    archive.write_bytes(orjson.dumps(RECORDS[0]) + b"\n" + broken + b"\n")
    ingest(_replay(project, archive))
    [entry] = [
        orjson.loads(line)
        for path in (RAW / "quarantine").glob("*.jsonl")
        for line in path.read_bytes().splitlines()
    ]
    assert base64.b64decode(entry["record_base64"]) == broken + b"\n"  # the bytes, exactly
    assert entry["record"].startswith('{"id": "1", "text": "caf\ufffd')  # and a readable preview


def test_a_symlinked_tweets_folder_is_followed_not_replaced(
    project: Project, tmp_path: Path
) -> None:
    volume = tmp_path / "volume" / "tweets"  # another "disk", linked into data/raw
    volume.mkdir(parents=True)
    RAW.mkdir(parents=True)
    TWEETS.symlink_to(volume, target_is_directory=True)
    first = ingest(project.settings(*SNAPSHOT))
    second = ingest(project.settings(*SNAPSHOT, "ingest.seed=7"))
    assert TWEETS.is_symlink() and TWEETS.resolve() == volume.resolve()
    assert len(part_files(volume)) == 3
    assert read_marker(volume)["counts"]["tweets"] == 300
    ids = {record["id"] for record in iter_part_records(TWEETS)}
    assert len(ids) == 300 and first.manifest_path.name != second.manifest_path.name
    # the manifests are the second run's, as the tweets are: one unit
    manifests = sorted((RAW / "manifests").glob("*.json"))
    assert [path.name for path in manifests] == [second.manifest_path.name]
    assert not list(volume.parent.glob(".tweets.*")) and not list(RAW.glob(".*.staging"))
    appended = ingest(project.settings(*SNAPSHOT, "ingest.mode=append", "ingest.seed=8"))
    assert appended.counts.accepted > 0 and TWEETS.is_symlink()
    require_complete(TWEETS, produced_by="ingest")


def test_a_mount_point_is_refused_before_anything_changes() -> None:
    with pytest.raises(TweetopsError, match=r"^data/raw/tweets is a mount point \(/\), which"):
        staging.check_swappable([TWEETS], [Path("/")])


def test_an_unreadable_part_file_is_named_and_an_append_still_works(
    good_snapshot: dict[str, str], project: Project, caplog: pytest.LogCaptureFixture
) -> None:
    garbage = TWEETS / "part-garbage.jsonl"
    garbage.write_bytes(b"{not json\n[1, 2]\n")
    appended = ingest(project.settings(*SNAPSHOT, "ingest.mode=append", "ingest.seed=9"))
    assert appended.counts.accepted > 0
    ids = {record["id"] for record in iter_part_records(TWEETS)}
    assert len(ids) == 300 + appended.counts.accepted
    assert require_complete(TWEETS, produced_by="ingest")["counts"]["tweets"] == len(ids)
    named = [r.getMessage() for r in caplog.records if "part-garbage.jsonl" in r.getMessage()]
    assert len(named) == 1 and "2 unreadable line(s) (first: line 1)" in named[0]
    assert garbage.read_bytes() == b"{not json\n[1, 2]\n"  # left as it was


def test_a_second_ingest_of_the_snapshot_waits_for_the_first_with_one_line(
    good_snapshot: dict[str, str], project: Project, caplog: pytest.LogCaptureFixture
) -> None:
    # the test holds the snapshot's lock as a first ingest would: a fixed interleaving, no race
    held = FileLock(str(locks.lock_path("ingest", TWEETS)))
    held.acquire()
    done: list[IngestResult] = []
    second = threading.Thread(
        target=lambda: done.append(
            ingest(project.settings(*SNAPSHOT, "ingest.mode=append", "ingest.seed=9"))
        )
    )
    with caplog.at_level(logging.INFO, logger="tweetops"):
        second.start()
        deadline = time.monotonic() + 60
        while "waits" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.02)
        assert snapshot_hashes() == good_snapshot  # nothing touched while it waits
        held.release()
        second.join(timeout=120)
    assert done and done[0].counts.accepted > 0
    waited = [r.getMessage() for r in caplog.records if "lock" in r.getMessage()]
    assert waited == [
        f"ingest: another `tweetops ingest` is working on {TWEETS} (lock "
        f"{locks.lock_path('ingest', TWEETS)}); this one waits for it (up to "
        f"{locks.LOCK_WAIT_S:.0f}s)"
    ]
    tweets = require_complete(TWEETS, produced_by="ingest")["counts"]["tweets"]
    assert tweets == 300 + done[0].counts.accepted


def test_an_ingest_that_waited_too_long_for_the_lock_refuses_and_changes_nothing(
    good_snapshot: dict[str, str], project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(locks, "LOCK_WAIT_S", 0.2)
    with (
        FileLock(str(locks.lock_path("ingest", TWEETS))),
        pytest.raises(TweetopsError, match=r"^Another `tweetops ingest` held the lock of data/"),
    ):
        ingest(project.settings(*SNAPSHOT, "ingest.mode=append", "ingest.seed=9"))
    assert snapshot_hashes() == good_snapshot


def test_an_append_whose_source_fails_before_a_tweet_keeps_the_snapshot_marked(
    project: Project, good_snapshot: dict[str, str], unreachable_api: str
) -> None:
    settings = project.settings(
        "ingest.source=search", "ingest.mode=append", f"ingest.api_base_url={unreachable_api}"
    )
    with pytest.raises(TweetopsError):
        ingest(settings)
    # nothing was written, so features may still read the snapshot as complete
    assert snapshot_hashes() == good_snapshot
    require_complete(TWEETS, produced_by="ingest")
