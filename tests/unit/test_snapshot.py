"""SnapshotWriter: bounded part files, atomic sealing, dedup, quarantine, manifest, clean-up."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support.snapshots import RECORDS
from tweetops.ingest.record import validate_record
from tweetops.ingest.snapshot import (
    Rejected,
    SnapshotWriter,
    existing_tweet_ids,
    iter_part_records,
    part_files,
    remove_unsealed_parts,
    write_manifest,
)


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, Path]:
    return {
        "raw_dir": tmp_path / "raw" / "tweets",
        "quarantine_dir": tmp_path / "raw" / "quar",
        "manifest_dir": tmp_path / "raw" / "manifests",
    }


def _writer(folders: dict[str, Path], tweets_per_file: int = 5, **kwargs: Any) -> SnapshotWriter:
    return SnapshotWriter(
        raw_dir=folders["raw_dir"],
        quarantine_dir=folders["quarantine_dir"],
        batch_id="batch-1",
        tweets_per_file=tweets_per_file,
        **kwargs,
    )


def _lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_part_files_are_bounded_and_roll_at_tweets_per_file(folders: dict[str, Path]) -> None:
    sealed: list[Path] = []
    writer = _writer(folders, tweets_per_file=5, on_part_sealed=sealed.append)
    for index, record in enumerate(RECORDS[:23]):
        assert writer.offer(record, f"test:{index}")
    writer.close()

    files = part_files(folders["raw_dir"])
    assert [p.name for p in files] == [f"batch-1-part-{n:05d}.jsonl" for n in range(5)]
    assert [len(_lines(p)) for p in files] == [5, 5, 5, 5, 3]  # never one file per tweet
    assert writer.written_files == files == sealed
    assert [r["id"] for r in iter_part_records(folders["raw_dir"])] == [
        r["id"] for r in RECORDS[:23]
    ]
    assert not list(folders["raw_dir"].glob(".*"))


def test_open_part_is_a_dot_tmp_file_no_reader_sees(folders: dict[str, Path]) -> None:
    writer = _writer(folders, tweets_per_file=5)
    for record in RECORDS[:3]:
        writer.offer(record, "test")
    raw = folders["raw_dir"]
    assert part_files(raw) == []
    assert list(iter_part_records(raw)) == []
    assert [p.name for p in raw.iterdir()] == [".batch-1-part-00000.jsonl.tmp"]

    for record in RECORDS[3:7]:
        writer.offer(record, "test")
    assert [p.name for p in part_files(raw)] == ["batch-1-part-00000.jsonl"]
    assert len(list(iter_part_records(raw))) == 5
    assert (raw / ".batch-1-part-00001.jsonl.tmp").exists()

    writer.close()
    assert [p.name for p in part_files(raw)] == [
        "batch-1-part-00000.jsonl",
        "batch-1-part-00001.jsonl",
    ]
    assert not list(raw.glob(".*.tmp"))


def test_records_are_written_in_canonical_form(folders: dict[str, Path]) -> None:
    record = RECORDS[0]
    variant = {
        **record,
        "created_at": record["created_at"].replace("Z", "+00:00"),
        "__twarc": {"version": "2.14.0"},
        "edit_history_tweet_ids": [record["id"]],
    }
    del variant["entities"]
    writer = _writer(folders)
    assert writer.offer(variant, "test")
    writer.close()
    [written] = list(iter_part_records(folders["raw_dir"]))
    assert written == validate_record(variant)
    assert written["created_at"] == record["created_at"]
    assert written["entities"] == {"hashtags": [], "mentions": [], "urls": []}
    assert "__twarc" not in written


def test_duplicates_within_the_run_and_against_known_ids(folders: dict[str, Path]) -> None:
    known = {RECORDS[0]["id"], RECORDS[1]["id"]}
    writer = _writer(folders, known_ids=set(known))
    outcomes = [
        writer.offer(record, "test")
        for record in [RECORDS[0], RECORDS[2], RECORDS[3], RECORDS[2], RECORDS[1], RECORDS[3]]
    ]
    writer.close()
    assert outcomes == [False, True, True, False, False, False]
    assert (writer.counts.accepted, writer.counts.duplicate, writer.counts.quarantined) == (2, 4, 0)
    assert [r["id"] for r in iter_part_records(folders["raw_dir"])] == [
        RECORDS[2]["id"],
        RECORDS[3]["id"],
    ]
    assert not folders["quarantine_dir"].exists()  # no quarantine file without a rejection


def test_quarantine_keeps_location_reason_and_record(folders: dict[str, Path]) -> None:
    wrong_type = {
        **RECORDS[1],
        "public_metrics": {**RECORDS[1]["public_metrics"], "like_count": "12"},
    }
    no_author = {key: value for key, value in RECORDS[2].items() if key != "author"}
    writer = _writer(folders)
    assert writer.offer(RECORDS[0], "a.jsonl:1")
    assert not writer.offer(wrong_type, "a.jsonl:2")
    assert not writer.offer(no_author, "a.jsonl:3:data[0]")
    assert not writer.offer([1, 2], "a.jsonl:4")
    assert not writer.offer(Rejected(b'{"id": \xff', "not valid JSON: bad byte"), "a.jsonl:5")
    writer.quarantine({"x": 1}, "elsewhere", "set aside by the source")
    writer.close()

    entries = _lines(folders["quarantine_dir"] / "batch-1.jsonl")
    assert [(e["location"], e["reason"]) for e in entries] == [
        ("a.jsonl:2", "public_metrics.like_count: Input should be a valid integer"),
        ("a.jsonl:3:data[0]", "record has no embedded author"),
        ("a.jsonl:4", "record is a JSON list, not an object"),
        ("a.jsonl:5", "not valid JSON: bad byte"),
        ("elsewhere", "set aside by the source"),
    ]
    assert {e["batch_id"] for e in entries} == {"batch-1"}
    assert entries[0]["record"] == wrong_type
    assert entries[2]["record"] == [1, 2]
    assert entries[3]["record"] == '{"id": \ufffd'  # a readable preview of the bytes ...
    assert base64.b64decode(entries[3]["record_base64"]) == b'{"id": \xff'  # ... and the bytes
    assert all("record_base64" not in e for e in entries if e is not entries[3])
    assert (writer.counts.accepted, writer.counts.quarantined, writer.counts.duplicate) == (1, 5, 0)


def test_manifest_has_ranges_counts_files_and_versions(folders: dict[str, Path]) -> None:
    writer = _writer(folders, tweets_per_file=4)
    shuffled = [RECORDS[7], RECORDS[2], RECORDS[9], RECORDS[4], RECORDS[2]]
    for record in shuffled:
        writer.offer(record, "test")
    writer.offer({"id": "1"}, "bad")
    writer.close()

    manifest = writer.manifest("replay", {"path": "/archive"})
    assert manifest["batch_id"] == "batch-1"
    assert manifest["source"] == "replay"
    assert manifest["details"] == {"path": "/archive"}
    assert manifest["counts"] == {"accepted": 4, "quarantined": 1, "duplicate": 1}
    assert manifest["id_range"] == [RECORDS[2]["id"], RECORDS[9]["id"]]
    assert manifest["created_at_range"] == [RECORDS[2]["created_at"], RECORDS[9]["created_at"]]
    assert manifest["files"] == ["batch-1-part-00000.jsonl"]
    assert {"python", "orjson", "pydantic"} <= set(manifest["tool_versions"])

    path = write_manifest(folders["manifest_dir"], manifest)
    assert path == folders["manifest_dir"] / "batch-1.json"
    assert orjson.loads(path.read_bytes()) == manifest


def test_manifest_of_an_empty_batch(folders: dict[str, Path]) -> None:
    writer = _writer(folders)
    writer.close()
    manifest = writer.manifest("replay", {})
    assert manifest["id_range"] == [None, None]
    assert manifest["created_at_range"] == [None, None]
    assert manifest["files"] == []
    assert part_files(folders["raw_dir"]) == []


def test_existing_tweet_ids_reads_every_sealed_part(folders: dict[str, Path]) -> None:
    writer = _writer(folders, tweets_per_file=4)
    for record in RECORDS[:10]:
        writer.offer(record, "test")
    assert existing_tweet_ids(folders["raw_dir"]) == {r["id"] for r in RECORDS[:8]}
    writer.close()
    assert existing_tweet_ids(folders["raw_dir"]) == {r["id"] for r in RECORDS[:10]}
    assert existing_tweet_ids(folders["raw_dir"].parent / "missing") == set()


def _killed_run_leftover(raw: Path) -> Path:
    """The open part of a run that was killed: a dot-file ending in `.tmp`, never sealed."""
    leftover = raw / ".batch-0-part-00003.jsonl.tmp"
    leftover.write_bytes(orjson.dumps(RECORDS[-1]) + b"\n" + b'{"id": "half a li')
    return leftover


def test_remove_unsealed_parts_keeps_sealed_ones(folders: dict[str, Path]) -> None:
    writer = _writer(folders, tweets_per_file=4)
    for record in RECORDS[:6]:
        writer.offer(record, "test")
    writer.close()
    raw = folders["raw_dir"]
    leftover = _killed_run_leftover(raw)
    assert part_files(raw) == writer.written_files  # a reader never sees the leftover
    remove_unsealed_parts(raw)
    assert not leftover.exists()
    assert sorted(p.name for p in raw.iterdir()) == [
        "batch-1-part-00000.jsonl",
        "batch-1-part-00001.jsonl",
    ]
    assert len(list(iter_part_records(raw))) == 6
    remove_unsealed_parts(raw.parent / "missing")
