"""The replay source: every archive format end to end, bad input, duplicates, properties."""

from __future__ import annotations

import copy
import gzip
import io
import json
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from mlflow import MlflowClient

from tests.conftest import Project
from tests.support import archives
from tweetops.errors import TweetopsError
from tweetops.ingest.replay import (
    ReplayStats,
    candidates_from_value,
    parse_document,
    parse_lines,
    read_archive_file,
    replay_source,
)
from tweetops.ingest.snapshot import SnapshotWriter, iter_part_records
from tweetops.ingest.step import IngestResult, ingest
from tweetops.ingest.synthetic import SyntheticSpec, generate_tweets

SPEC = SyntheticSpec(
    seed=11, n_tweets=400, n_users=40, start_time=datetime(2026, 10, 1, tzinfo=UTC), days=4
)
# archives hold what the API sent: no `fetched_at` (replay takes twarc2's `retrieved_at`)
RECORDS = [
    {key: value for key, value in record.items() if key != "fetched_at"}
    for record in generate_tweets(SPEC)
]
RETRIEVED_AT = "2026-10-15T12:00:00.000Z"  # archives.TWARC_META's retrieved_at, normalized
RAW_DIR = Path("data/raw/tweets")
QUARANTINE_DIR = Path("data/raw/quarantine")

# --- the lecture's tweepy v1.1 statuses, as `json.dumps(tweet._json)` saves them -------------

LECTURE_USER = {
    "id": 2244994945,
    "id_str": "2244994945",
    "name": "Twitter Dev",
    "screen_name": "TwitterDev",
    "location": "127.0.0.1",
    "description": "The voice of the #TwitterDev team",
    "url": "https://t.co/3ZX3TNiZCY",
    "protected": False,
    "followers_count": 513958,
    "friends_count": 2039,
    "listed_count": 1672,
    "created_at": "Sat Dec 14 04:35:55 +0000 2013",
    "favourites_count": 2133,
    "utc_offset": None,
    "time_zone": None,
    "geo_enabled": True,
    "verified": True,
    "statuses_count": 3635,
    "lang": None,
    "contributors_enabled": False,
    "is_translator": False,
    "profile_background_color": "FFFFFF",
    "profile_image_url_https": "https://pbs.twimg.com/profile_images/880136122604507136/"
    "xHrnqf1T_normal.jpg",
    "default_profile": False,
    "following": None,
    "follow_request_sent": None,
    "notifications": None,
}
READER = {
    **LECTURE_USER,
    "id": 86478153,
    "id_str": "86478153",
    "screen_name": "sparky_reader",
    "name": "Sparky",
    "verified": False,
    "followers_count": 338337,
    "friends_count": 305,
    "statuses_count": 38742,
    "favourites_count": 219,
    "listed_count": 4,
    "created_at": "Sat Oct 31 08:01:12 +0000 2009",
}
EXTENDED_TEXT = (
    "Structured Streaming reads our #Spark tweets as they land, one file per trigger, "
    "and MLflow tracks every run of the model. Thanks @databricks for the docs! "
    "Slides and notebook: https://t.co/Xweb8KcNiq"
)
EXTENDED_STATUS = {
    "created_at": "Wed Oct 10 20:19:24 +0000 2018",
    "id": 1050118621198921728,
    "id_str": "1050118621198921728",
    "text": EXTENDED_TEXT[:114] + "\u2026 https://t.co/MkGjXf9aXm",
    "source": '<a href="https://mobile.twitter.com" rel="nofollow">Twitter Web App</a>',
    "truncated": True,
    "in_reply_to_status_id": None,
    "in_reply_to_status_id_str": None,
    "in_reply_to_user_id": None,
    "in_reply_to_user_id_str": None,
    "in_reply_to_screen_name": None,
    "user": LECTURE_USER,
    "geo": None,
    "coordinates": None,
    "place": None,
    "contributors": None,
    "is_quote_status": False,
    "extended_tweet": {
        "full_text": EXTENDED_TEXT,
        "display_text_range": [0, len(EXTENDED_TEXT)],
        "entities": {
            "hashtags": [{"text": "Spark", "indices": [31, 37]}],
            "user_mentions": [
                {
                    "screen_name": "databricks",
                    "name": "Databricks",
                    "id": 1,
                    "id_str": "1",
                    "indices": [130, 141],
                }
            ],
            "urls": [
                {
                    "url": "https://t.co/Xweb8KcNiq",
                    "expanded_url": "https://example.com/slides",
                    "display_url": "example.com/slides",
                    "indices": [177, 200],
                }
            ],
            "symbols": [],
            "media": [
                {
                    "id": 1050118606565072896,
                    "id_str": "1050118606565072896",
                    "indices": [201, 224],
                    "type": "photo",
                }
            ],
        },
        "extended_entities": {
            "media": [
                {
                    "id": 1050118606565072896,
                    "id_str": "1050118606565072896",
                    "indices": [201, 224],
                    "media_url_https": "https://pbs.twimg.com/media/DpN.jpg",
                    "type": "photo",
                },
                {
                    "id": 1050118606565072897,
                    "id_str": "1050118606565072897",
                    "indices": [201, 224],
                    "media_url_https": "https://pbs.twimg.com/media/DpO.mp4",
                    "type": "video",
                },
            ]
        },
    },
    "quote_count": 12,
    "reply_count": 7,
    "retweet_count": 161,
    "favorite_count": 296,
    "entities": {
        "hashtags": [{"text": "Spark", "indices": [31, 37]}],
        "urls": [
            {
                "url": "https://t.co/MkGjXf9aXm",
                "expanded_url": "https://twitter.com/i/web/status/1050118621198921728",
                "display_url": "twitter.com/i/web/status/1\u2026",
                "indices": [117, 140],
            }
        ],
        "user_mentions": [],
        "symbols": [],
    },
    "favorited": False,
    "retweeted": False,
    "possibly_sensitive": False,
    "filter_level": "low",
    "lang": "en",
    "timestamp_ms": "1539202764000",
}
RETWEET_STATUS = {
    "created_at": "Thu Oct 11 07:00:02 -0200 2018",
    "id": 1050280000000000001,
    "id_str": "1050280000000000001",
    "text": "RT @TwitterDev: Structured Streaming reads our #Spark tweets as they land, one file "
    "per trigger, and MLflow tracks every run of t\u2026",
    "truncated": False,
    "entities": {
        "hashtags": [{"text": "Spark", "indices": [47, 53]}],
        "symbols": [],
        "user_mentions": [
            {
                "screen_name": "TwitterDev",
                "name": "Twitter Dev",
                "id": 2244994945,
                "id_str": "2244994945",
                "indices": [3, 14],
            }
        ],
        "urls": [],
    },
    "in_reply_to_status_id": None,
    "in_reply_to_status_id_str": None,
    "user": READER,
    "retweeted_status": EXTENDED_STATUS,
    "is_quote_status": False,
    "retweet_count": 161,
    "favorite_count": 0,
    "favorited": False,
    "retweeted": False,
    "lang": "en",
}
REPLY_STATUS = {
    "created_at": "Fri Oct 12 23:59:59 +0000 2018",
    "id": 1050600000000000002,
    "id_str": "1050600000000000002",
    "full_text": "@TwitterDev \U0001f44d\U0001f3fd",
    "display_text_range": [0, 13],
    "truncated": False,
    "entities": {
        "hashtags": [],
        "symbols": [],
        "urls": [],
        "user_mentions": [
            {
                "screen_name": "TwitterDev",
                "name": "Twitter Dev",
                "id": 2244994945,
                "id_str": "2244994945",
                "indices": [0, 11],
            }
        ],
    },
    "in_reply_to_status_id": 1050118621198921728,
    "in_reply_to_status_id_str": "1050118621198921728",
    "in_reply_to_user_id": 2244994945,
    "in_reply_to_user_id_str": "2244994945",
    "in_reply_to_screen_name": "TwitterDev",
    "user": READER,
    "is_quote_status": True,
    "quoted_status_id": 1049999999999999999,
    "quoted_status_id_str": "1049999999999999999",
    "retweet_count": 0,
    "favorite_count": 3,
    "favorited": False,
    "retweeted": False,
    "lang": None,
}
LECTURE_STATUSES = (EXTENDED_STATUS, RETWEET_STATUS, REPLY_STATUS)


# --- helpers --------------------------------------------------------------------------------


def _replay(project: Project, path: Path, *overrides: str) -> IngestResult:
    return ingest(
        project.settings(
            "ingest.source=replay", f"ingest.path={path}", "ingest.tweets_per_file=150", *overrides
        )
    )


def _snapshot() -> list[dict[str, Any]]:
    """The snapshot's records without `fetched_at` (test_fetched_at_* check it)."""
    return [
        {key: value for key, value in record.items() if key != "fetched_at"}
        for record in iter_part_records(RAW_DIR)
    ]


def _manifest(result: IngestResult) -> dict[str, Any]:
    return orjson.loads(result.manifest_path.read_bytes())


def _quarantine() -> dict[str, str]:
    entries = [
        orjson.loads(line)
        for path in sorted(QUARANTINE_DIR.glob("*.jsonl"))
        for line in path.read_bytes().splitlines()
    ]
    assert all(
        set(entry) - {"record_base64"} == {"batch_id", "location", "reason", "record"}
        for entry in entries
    )  # base64 of the bytes, for bytes that are not UTF-8
    return {entry["location"]: entry["reason"] for entry in entries}


def _by_id(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {record["id"]: record for record in records}


def _assert_snapshot_is(expected: list[dict[str, Any]]) -> None:
    written = _snapshot()
    assert [record["id"] for record in written] == [record["id"] for record in expected]
    assert written == expected


def _assert_counts(
    result: IngestResult, accepted: int, quarantined: int = 0, duplicate: int = 0
) -> dict[str, Any]:
    manifest = _manifest(result)
    counts = {"accepted": accepted, "quarantined": quarantined, "duplicate": duplicate}
    assert manifest["counts"] == counts
    assert (result.counts.accepted, result.counts.quarantined, result.counts.duplicate) == (
        accepted,
        quarantined,
        duplicate,
    )
    assert manifest["source"] == "replay"
    assert manifest["batch_id"].startswith("replay-")
    return manifest


# --- one test per format, end to end --------------------------------------------------------


def test_twarc2_raw_pages(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = archives.write_twarc2_raw(tmp_path / "twarc" / "search.jsonl", RECORDS, page_size=100)
    result = _replay(project, path)
    _assert_snapshot_is(archives.expected_from_pages(RECORDS, 100))
    manifest = _assert_counts(result, accepted=len(RECORDS))
    assert manifest["details"]["formats"] == {"twarc2_page": len(RECORDS)}
    assert manifest["details"]["pages"] == 4
    assert manifest["details"]["files"] == manifest["details"]["files_read"] == 1
    assert manifest["details"]["path"] == str(path)
    assert len(manifest["files"]) == 3  # 400 tweets, 150 per part file
    assert "ingest[replay]: 400 accepted, 0 quarantined, 0 duplicate" in capsys.readouterr().out


def test_twarc2_flattened(project: Project, tmp_path: Path) -> None:
    path = archives.write_twarc2_flat(tmp_path / "flat.jsonl", RECORDS)
    result = _replay(project, path)
    _assert_snapshot_is(RECORDS)
    manifest = _assert_counts(result, accepted=len(RECORDS))
    assert manifest["details"]["formats"] == {"twarc2_flat": len(RECORDS)}
    assert manifest["id_range"] == [RECORDS[0]["id"], RECORDS[-1]["id"]]
    assert manifest["created_at_range"] == [RECORDS[0]["created_at"], RECORDS[-1]["created_at"]]


def test_v2_page_json_file(project: Project, tmp_path: Path) -> None:
    page = RECORDS[:100]
    path = archives.write_v2_page(tmp_path / "page.json", page, pretty=True)
    result = _replay(project, path)
    _assert_snapshot_is(archives.expected_from_pages(page, 100))
    manifest = _assert_counts(result, accepted=100)
    assert manifest["details"]["formats"] == {"v2_page": 100}


def test_v2_array_of_pages(project: Project, tmp_path: Path) -> None:
    path = archives.write_v2_pages(tmp_path / "pages.json", RECORDS, page_size=30)
    result = _replay(project, path)
    _assert_snapshot_is(archives.expected_from_pages(RECORDS, 30))
    manifest = _assert_counts(result, accepted=len(RECORDS))
    assert manifest["details"]["pages"] == 14


def test_lecture_twitter_logs_folder(project: Project, tmp_path: Path) -> None:
    logs = tmp_path / "twitter-logs"
    logs.mkdir()
    for status in LECTURE_STATUSES:  # exactly as the lecture saves `tweet._json`
        (logs / f"{status['id_str']}.json").write_text(json.dumps(status))
    generated = RECORDS[:40]
    archives.write_twitter_logs(logs, generated, mode="compat")
    result = _replay(project, logs)

    written = _by_id(_snapshot())
    assert len(written) == 43
    for record in generated:
        assert written[record["id"]] == archives.expected_from_v1(record)
    extended, retweet, reply = (written[s["id_str"]] for s in LECTURE_STATUSES)
    assert extended == {
        "id": "1050118621198921728",
        "created_at": "2018-10-10T20:19:24.000Z",
        "text": EXTENDED_TEXT,
        "lang": "en",
        "author_id": "2244994945",
        "public_metrics": {
            "retweet_count": 161,
            "reply_count": 7,
            "like_count": 296,
            "quote_count": 12,
        },
        "entities": {
            "hashtags": [{"start": 31, "end": 37, "tag": "Spark"}],
            "mentions": [{"start": 130, "end": 141, "username": "databricks"}],
            "urls": [
                {
                    "start": 177,
                    "end": 200,
                    "url": "https://t.co/Xweb8KcNiq",
                    "expanded_url": "https://example.com/slides",
                }
            ],
        },
        "attachments": {"media_keys": ["3_1050118606565072896", "7_1050118606565072897"]},
        "referenced_tweets": [],
        "author": {
            "id": "2244994945",
            "username": "TwitterDev",
            "created_at": "2013-12-14T04:35:55.000Z",
            "verified": True,
            "public_metrics": {
                "followers_count": 513958,
                "following_count": 2039,
                "tweet_count": 3635,
                "listed_count": 1672,
                "like_count": 2133,
            },
        },
    }
    assert EXTENDED_TEXT[31:37] == "#Spark" and EXTENDED_TEXT[130:141] == "@databricks"
    assert retweet["created_at"] == "2018-10-11T09:00:02.000Z"  # -0200 shifted to UTC
    assert retweet["referenced_tweets"] == [{"type": "retweeted", "id": "1050118621198921728"}]
    assert retweet["public_metrics"] == {
        "retweet_count": 161,
        "reply_count": 0,
        "like_count": 0,
        "quote_count": 0,
    }
    assert retweet["author"]["public_metrics"] == {
        "followers_count": 338337,
        "following_count": 305,
        "tweet_count": 38742,
        "listed_count": 4,
        "like_count": 219,
    }
    assert retweet["author"]["verified"] is False
    assert reply["text"] == "@TwitterDev \U0001f44d\U0001f3fd"
    assert reply["lang"] == "und"
    assert reply["referenced_tweets"] == [
        {"type": "quoted", "id": "1049999999999999999"},
        {"type": "replied_to", "id": "1050118621198921728"},
    ]
    assert reply["entities"]["mentions"] == [{"start": 0, "end": 11, "username": "TwitterDev"}]

    manifest = _assert_counts(result, accepted=43)
    assert manifest["details"]["formats"] == {"v1.1": 43}
    assert manifest["details"]["files_read"] == 43


def test_v1_jsonl_pretty_and_extended_mode(project: Project, tmp_path: Path) -> None:
    folder = tmp_path / "v1"
    archives.write_v1_jsonl(
        folder / "statuses.jsonl", RECORDS[:100], mode="extended", with_v2_counts=True
    )
    archives.write_v1_jsonl(folder / "statuses-classic.json", RECORDS[100:150], mode="classic")
    archives.write_twitter_logs(folder / "pretty", RECORDS[150:160], mode="extended", pretty=True)
    result = _replay(project, folder)
    expected = (
        [archives.expected_from_v1(r) for r in RECORDS[150:160]]
        + [archives.expected_from_v1(r) for r in RECORDS[100:150]]
        + [archives.expected_from_v1(r, with_v2_counts=True) for r in RECORDS[:100]]
    )
    _assert_snapshot_is(expected)  # sorted walk: pretty/ < statuses-classic.json < statuses.jsonl
    _assert_counts(result, accepted=160)


def test_fetched_at_is_twarc2_retrieved_at_else_null(project: Project, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    archives.write_twarc2_raw(folder / "a-raw.jsonl", RECORDS[:100], page_size=50)
    archives.write_twarc2_flat(folder / "b-flat.jsonl", RECORDS[100:200])
    archives.write_v2_pages(folder / "c-pages.json", RECORDS[200:300], page_size=50)
    archives.write_v1_jsonl(folder / "d-statuses.jsonl", RECORDS[300:])
    _replay(project, folder)
    fetched = {r["id"]: r["fetched_at"] for r in iter_part_records(RAW_DIR)}
    assert len(fetched) == len(RECORDS)
    assert {fetched[r["id"]] for r in RECORDS[:200]} == {RETRIEVED_AT}
    assert {fetched[r["id"]] for r in RECORDS[200:]} == {None}  # the archive does not say


def test_gzip_archives(project: Project, tmp_path: Path) -> None:
    folder = tmp_path / "gz"
    archives.write_twarc2_flat(folder / "a.jsonl.gz", RECORDS[:200])
    archives.write_v2_pages(folder / "b.json.gz", RECORDS[200:300], page_size=50)
    archives.write_v1_jsonl(folder / "c.ndjson.gz", RECORDS[300:])
    result = _replay(project, folder)
    expected = (
        RECORDS[:200]
        + archives.expected_from_pages(RECORDS[200:300], 50)
        + [archives.expected_from_v1(r) for r in RECORDS[300:]]
    )
    _assert_snapshot_is(expected)
    manifest = _assert_counts(result, accepted=len(RECORDS))
    assert manifest["details"]["formats"] == {"twarc2_flat": 200, "v2_page": 100, "v1.1": 100}


def test_mixed_folder_with_duplicates_across_files(project: Project, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    archives.write_twarc2_raw(folder / "1-raw.jsonl", RECORDS[:100], page_size=25)
    archives.write_twarc2_flat(folder / "2-flat.jsonl", RECORDS[50:200])  # 50 repeat 1-raw
    archives.write_v2_page(folder / "3" / "page.json", RECORDS[200:250])
    archives.write_twitter_logs(folder / "4" / "twitter-logs", RECORDS[240:300])  # 10 repeats
    archives.write_lines(folder / "5-normalized.ndjson", RECORDS[300:])
    (folder / ".hidden.jsonl").write_bytes(b"not even json\n")
    (folder / ".cache").mkdir()
    archives.write_twarc2_flat(folder / ".cache" / "old.jsonl", RECORDS[:5])
    (folder / "notes.txt").write_text("not an archive")

    result = _replay(project, folder)
    written = _snapshot()
    assert sorted(r["id"] for r in written) == sorted(r["id"] for r in RECORDS)
    assert len({r["id"] for r in written}) == len(written)
    manifest = _assert_counts(result, accepted=len(RECORDS), duplicate=60)
    assert manifest["details"]["formats"] == {
        "twarc2_page": 100,
        "twarc2_flat": 150,
        "v2_page": 50,
        "v1.1": 60,
        "v2_tweet": 100,
    }
    assert manifest["details"]["files"] == 64
    assert _quarantine() == {}


def test_counts_are_one_summary_line_and_mlflow_metrics(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "archive"
    archives.write_twarc2_flat(folder / "a.jsonl", RECORDS[:30])
    archives.write_twarc2_flat(folder / "b.jsonl", RECORDS[20:40])  # 10 repeat a.jsonl
    (folder / "c.jsonl").write_bytes(b"{broken\n[1, 2]\n")

    _replay(project, folder)
    summary = [
        line for line in capsys.readouterr().out.splitlines() if line.startswith("ingest[replay]:")
    ]
    assert len(summary) == 1
    assert summary[0].startswith("ingest[replay]: 40 accepted, 2 quarantined, 10 duplicate (")
    run = MlflowClient().search_runs(
        [MlflowClient().get_experiment_by_name("tweetops").experiment_id]
    )[0]
    assert run.data.metrics["ingest_accepted"] == 40
    assert run.data.metrics["ingest_quarantined"] == 2
    assert run.data.metrics["ingest_duplicate"] == 10
    assert run.data.metrics["ingest_tweets_per_second"] > 0


def test_append_drops_tweets_already_in_the_snapshot(project: Project, tmp_path: Path) -> None:
    first = archives.write_twarc2_flat(tmp_path / "day1" / "tweets.jsonl", RECORDS[:250])
    second = archives.write_twarc2_flat(tmp_path / "day2" / "tweets.jsonl", RECORDS[200:])
    one = _replay(project, first)
    two = _replay(project, second, "ingest.mode=append")
    _assert_counts(two, accepted=150, duplicate=50)
    assert one.manifest_path != two.manifest_path and one.manifest_path.exists()
    written = _snapshot()
    assert sorted(r["id"] for r in written) == sorted(r["id"] for r in RECORDS)
    again = _replay(project, second, "ingest.mode=append")
    _assert_counts(again, accepted=0, duplicate=200)
    assert len(_snapshot()) == len(RECORDS)
    _replay(project, first)  # mode replace starts over
    assert len(_snapshot()) == 250


# --- bad input -------------------------------------------------------------------------------


def _status_line(**changes: Any) -> bytes:
    status = {**EXTENDED_STATUS, "id_str": "1050118621198900000", **changes}
    return orjson.dumps(status)


def _bad_lines() -> list[bytes]:
    good = archives.to_twarc2_flat(RECORDS[0])
    wrong_type = copy.deepcopy(archives.to_twarc2_flat(RECORDS[1]))
    wrong_type["author"]["public_metrics"]["followers_count"] = "many"
    orphan_page = archives.to_v2_page([RECORDS[2]])
    orphan_page["includes"]["users"] = []
    return [
        orjson.dumps(good),  # 1 accepted
        b'{"id": "1", "text": ',  # 2 bad JSON
        b"",  # 3 blank: skipped
        b"[1, 2, 3]",  # 4
        b'"just a string"',  # 5
        b"null",  # 6
        orjson.dumps(wrong_type),  # 7
        b'{"text": "caf\xe9 \xff"}',  # 8 undecodable bytes
        b'{"foo": 1}',  # 9
        _status_line(created_at="yesterday"),  # 10
        _status_line(user=None),  # 11
        orjson.dumps(orphan_page),  # 12
        b'{"errors": [{"title": "Not Found Error"}]}',  # 13
        orjson.dumps(archives.to_twarc2_flat(RECORDS[3])),  # 14 accepted
    ]


def _truncated_gzip() -> bytes:
    lines = b"".join(orjson.dumps(archives.to_twarc2_flat(r)) + b"\n" for r in RECORDS[10:60])
    data = gzip.compress(lines)
    return data[: len(data) // 2]


def test_bad_input_is_quarantined_with_location_and_reason(
    project: Project, tmp_path: Path
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "lines.jsonl").write_bytes(b"\n".join(_bad_lines()) + b"\n")
    (bad / "empty.json").write_bytes(b"")
    (bad / "blank.jsonl").write_bytes(b"\n  \n")
    (bad / "not-json.json").write_bytes(b"this is a text file, not JSON\n")
    (bad / "numbers.json").write_bytes(b"[1, 2]")
    (bad / "string.json").write_bytes(b'"hello"')
    (bad / "null.json").write_bytes(b"null")
    (bad / "empty-array.json").write_bytes(b"[]")
    (bad / "not-gzip.json.gz").write_bytes(b"plain bytes, no gzip header")
    (bad / "truncated.jsonl.gz").write_bytes(_truncated_gzip())

    result = _replay(project, bad)
    reasons = _quarantine()
    expected = {
        "bad/lines.jsonl:2": "not valid JSON: unexpected end of data",
        "bad/lines.jsonl:4": "record is a JSON array, not an object",
        "bad/lines.jsonl:5": "record is a JSON string, not an object",
        "bad/lines.jsonl:6": "record is a JSON null, not an object",
        "bad/lines.jsonl:7": "author.public_metrics.followers_count: Input should be a valid "
        "integer",
        "bad/lines.jsonl:8": "not valid JSON: str is not valid UTF-8",
        "bad/lines.jsonl:9": "unrecognized record shape",
        "bad/lines.jsonl:10": "created_at: 'yesterday' is not a v1.1 timestamp like "
        "'Wed Oct 10 20:19:24 +0000 2018'",
        "bad/lines.jsonl:11": "user: a v1.1 status needs a user object, got JSON null",
        "bad/lines.jsonl:12:data[0]": "record has no embedded author",
        "bad/lines.jsonl:13": "page holds API errors and no data",
        "bad/empty.json": "file is empty",
        "bad/blank.jsonl": "file is empty",
        "bad/not-json.json": "file is not valid JSON: invalid literal",
        "bad/numbers.json[0]": "record is a JSON number, not an object",
        "bad/numbers.json[1]": "record is a JSON number, not an object",
        "bad/string.json": "record is a JSON string, not an object",
        "bad/null.json": "record is a JSON null, not an object",
        "bad/empty-array.json": "file holds an empty JSON array",
        "bad/not-gzip.json.gz": "file could not be read: Not a gzipped file",
    }
    for location, reason in expected.items():
        assert reasons[location].startswith(reason), (location, reasons.get(location))
    assert all("\n" not in reason for reason in reasons.values())
    truncated = [loc for loc in reasons if loc.startswith("bad/truncated.jsonl.gz:")]
    assert len(truncated) == 1
    assert reasons[truncated[0]].startswith("file could not be read from here on:")
    assert set(reasons) == {*expected, *truncated}

    accepted_from_truncated = int(truncated[0].rsplit(":", 1)[1]) - 1
    _assert_counts(result, accepted=2 + accepted_from_truncated, quarantined=len(reasons))


def test_quarantine_keeps_the_offending_input(project: Project, tmp_path: Path) -> None:
    path = tmp_path / "some.jsonl"
    path.write_bytes(b'{"broken": \n' + _status_line(created_at="2018-10-10") + b"\n")
    _replay(project, path, "ingest.allow_empty=true")
    entries = [
        orjson.loads(line)
        for line in next(QUARANTINE_DIR.glob("*.jsonl")).read_bytes().splitlines()
    ]
    assert entries[0]["record"] == '{"broken": \n'
    assert entries[1]["record"]["id_str"] == "1050118621198900000"
    assert entries[1]["location"] == "some.jsonl:2"


def test_empty_search_page_is_not_an_error(project: Project, tmp_path: Path) -> None:
    path = tmp_path / "search.jsonl"
    archives.write_lines(
        path,
        [
            {"meta": {"result_count": 0}, "__twarc": archives.TWARC_META},
            archives.to_v2_page(RECORDS[:5], twarc=True),
        ],
    )
    result = _replay(project, path)
    manifest = _assert_counts(result, accepted=5)
    assert manifest["details"]["pages"] == 2


def _locations(path: Path) -> list[tuple[str, str]]:
    """(location, outcome) of every candidate of one file: "ok" or the Rejected reason."""
    return [
        (location, getattr(candidate, "reason", "ok"))
        for candidate, location in read_archive_file(path, path.name, ReplayStats())
    ]


def test_json_files_are_read_as_lines_or_as_one_document(tmp_path: Path) -> None:
    flat = [orjson.dumps(archives.to_twarc2_flat(record)) for record in RECORDS[:2]]
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps(REPLY_STATUS, indent=1).encode())
    assert _locations(bom) == [("bom.json", "ok")]

    lines = tmp_path / "lines.json"
    lines.write_bytes(b'{"id": "1", "te\n' + b"\n".join(flat) + b"\n")
    assert [(loc, reason[:14]) for loc, reason in _locations(lines)] == [
        ("lines.json:1", "not valid JSON"),
        ("lines.json:2", "ok"),
        ("lines.json:3", "ok"),
    ]

    pretty = archives.write_json(
        tmp_path / "pretty.json", [archives.to_v2_page(RECORDS[:2])], pretty=True
    )
    assert _locations(pretty) == [
        ("pretty.json[0]:data[0]", "ok"),
        ("pretty.json[0]:data[1]", "ok"),
    ]

    one_line = tmp_path / "one-line.json"
    one_line.write_bytes(b"[" + b", ".join(flat) + b"]\n")
    assert _locations(one_line) == [("one-line.json[0]", "ok"), ("one-line.json[1]", "ok")]


def test_unusable_path_settings_say_what_to_do(project: Project, tmp_path: Path) -> None:
    def source(*overrides: str) -> None:
        replay_source(project.settings("ingest.source=replay", *overrides).ingest)

    with pytest.raises(TweetopsError, match=r"^Set ingest.path to the archive file or folder"):
        source()
    with pytest.raises(TweetopsError, match="does not exist"):
        source(f"ingest.path={tmp_path / 'nowhere'}")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no archives here")
    with pytest.raises(TweetopsError, match=r"holds no \.json, \.jsonl"):
        source(f"ingest.path={tmp_path / 'empty'}")
    with pytest.raises(TweetopsError, match="is not an archive file"):
        source(f"ingest.path={tmp_path / 'empty' / 'readme.txt'}")
    RAW_DIR.mkdir(parents=True)
    with pytest.raises(TweetopsError, match=r"is inside ingest\.raw_dir"):
        source(f"ingest.path={RAW_DIR}")


def test_snapshot_output_folders_are_never_read_back(project: Project) -> None:
    archive = Path("archive")
    archives.write_twarc2_flat(archive / "tweets.jsonl", RECORDS[:20])
    outputs = (
        "ingest.raw_dir=archive/snapshot/tweets",
        "ingest.manifest_dir=archive/snapshot/manifests",
        "ingest.quarantine_dir=archive/snapshot/quarantine",
        "ingest.checkpoint_dir=archive/checkpoints",
    )
    (archive / "checkpoints").mkdir()
    (archive / "checkpoints" / "search.json").write_text('{"next_token": "b26v89c19zqg8o3f"}')
    first = _replay(project, archive, *outputs)
    assert first.counts.accepted == 20
    second = _replay(project, archive, "ingest.mode=append", *outputs)
    _assert_counts(second, accepted=0, duplicate=20)
    assert _manifest(second)["details"]["files"] == 1


def test_batch_ids_are_unique_per_run(project: Project, tmp_path: Path) -> None:
    path = archives.write_twarc2_flat(tmp_path / "t.jsonl", RECORDS[:3])
    settings = project.settings("ingest.source=replay", f"ingest.path={path}").ingest
    assert len({replay_source(settings).batch_id for _ in range(5)}) == 5


# --- properties: nothing is lost, nothing crashes --------------------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
# keys that make a value a page (zero or many tweets) are left out: each value is one candidate
PLAIN_KEYS = st.text(max_size=8).filter(lambda key: key not in ("data", "meta"))
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            PLAIN_KEYS
            | st.sampled_from(
                ["id", "author", "id_str", "user", "errors", "author_id", "public_metrics"]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=15,
)
GARBAGE_BYTES = st.binary(min_size=1, max_size=40).filter(
    lambda line: (
        b"\n" not in line
        and line.strip(b" \t\r\n") != b""
        and b'"data"' not in line
        and b'"meta"' not in line
    )
)
VALID_LINES = st.tuples(
    st.integers(min_value=0, max_value=39), st.sampled_from(["flat", "v1", "page", "normalized"])
)
PROPERTY_SETTINGS = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _valid_line(index: int, fmt: str) -> bytes:
    record = RECORDS[index]
    value = {
        "flat": archives.to_twarc2_flat,
        "v1": archives.to_v1_status,
        "page": lambda r: archives.to_v2_page([r]),
        "normalized": dict,
    }[fmt](record)
    return orjson.dumps(value)


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="replay-property-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _writer(scratch: Path) -> SnapshotWriter:
    for child in scratch.iterdir():
        shutil.rmtree(child)
    return SnapshotWriter(
        raw_dir=scratch / "raw",
        quarantine_dir=scratch / "quarantine",
        batch_id="prop",
        tweets_per_file=7,
    )


@PROPERTY_SETTINGS
@given(
    lines=st.lists(
        st.one_of(VALID_LINES, JSON_VALUES.map(orjson.dumps), GARBAGE_BYTES), max_size=25
    )
)
def test_every_line_is_accepted_quarantined_or_duplicate(scratch: Path, lines: list[Any]) -> None:
    valid_ids = [RECORDS[line[0]]["id"] for line in lines if isinstance(line, tuple)]
    data = b"\n".join(_valid_line(*line) if isinstance(line, tuple) else line for line in lines)
    writer = _writer(scratch)
    writer.offer_all(parse_lines(io.BytesIO(data), "prop.jsonl", ReplayStats()))
    writer.close()

    counts = writer.counts
    unique = set(valid_ids)
    bad = len(lines) - len(valid_ids)
    assert counts.accepted == len(unique)
    assert counts.duplicate == len(valid_ids) - len(unique)
    assert counts.quarantined == (bad if lines else 1)  # no line at all: "file is empty"
    assert {record["id"] for record in iter_part_records(writer.raw_dir)} == unique


@PROPERTY_SETTINGS
@given(document=st.one_of(JSON_VALUES.map(orjson.dumps), GARBAGE_BYTES))
def test_any_one_document_file_gives_one_outcome_per_value(scratch: Path, document: bytes) -> None:
    writer = _writer(scratch)
    candidates = list(parse_document(document, "doc.json", ReplayStats()))
    writer.offer_all(candidates)
    writer.close()
    document_without_bom = document.removeprefix(b"\xef\xbb\xbf")
    value = orjson.loads(document_without_bom) if _is_json(document_without_bom) else None
    expected = len(value) if isinstance(value, list) and value else 1
    assert len(candidates) == expected
    assert writer.counts.accepted + writer.counts.quarantined == expected


def _is_json(data: bytes) -> bool:
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return True


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, child in items:
        yield (*prefix, key)
        yield from _paths(child, (*prefix, key))


def _parent_of(value: Any, path: tuple[Any, ...]) -> Any:
    """The container holding `path[-1]` inside `value`, or None when the path is not there."""
    for key in path[:-1]:
        value = _child(value, key)
    return value if _child(value, path[-1]) is not _MISSING else None


_MISSING = object()


def _child(value: Any, key: Any) -> Any:
    if isinstance(value, dict):
        return value.get(key, _MISSING)
    if isinstance(value, list) and isinstance(key, int) and key < len(value):
        return value[key]
    return _MISSING


STATUS_PATHS = sorted(set(_paths(EXTENDED_STATUS)) | set(_paths(RETWEET_STATUS)), key=repr)


@PROPERTY_SETTINGS
@given(
    status=st.sampled_from(LECTURE_STATUSES),
    path=st.sampled_from(STATUS_PATHS),
    replacement=st.one_of(st.just("<delete>"), JSON_VALUES),
)
def test_a_v1_status_with_any_field_broken_never_crashes(
    scratch: Path, status: dict[str, Any], path: tuple[Any, ...], replacement: Any
) -> None:
    broken = copy.deepcopy(status)
    parent = _parent_of(broken, path)
    assume(parent is not None)
    if replacement == "<delete>":
        del parent[path[-1]]
    else:
        parent[path[-1]] = replacement
    candidates = list(candidates_from_value(broken, "status.json", ReplayStats()))
    assert len(candidates) == 1
    writer = _writer(scratch)
    writer.offer_all(candidates)
    writer.close()
    assert writer.counts.accepted + writer.counts.quarantined == 1
