"""Times, ids and counts that cannot be real: ingest and features refuse them with one reason."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from pyspark.sql import SparkSession

from tests.support.tweets import raw_frame, tweet
from tweetops.features import parse_tweets, rejected_rows, valid_tweets
from tweetops.ingest.record import InvalidRecord, validate_record
from tweetops.ingest.snapshot import SnapshotWriter
from tweetops.schema import (
    BEFORE_ACCOUNT_REASON,
    MAX_COUNT,
    before_platform_reason,
    count_reason,
    future_reason,
    id_reason,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
IDS = itertools.count(1849000000000000001)  # every record its own id


def as_lines(*records: dict[str, Any]) -> list[str]:
    return [json.dumps(record) for record in records]  # orjson refuses ints beyond 64 bits


def record(**changes: Any) -> dict[str, Any]:
    """A valid normalized tweet of user 7, changed by `changes` (`author.x` keys for the author)."""
    base = tweet(str(next(IDS)), "7", "2026-11-30T10:00:00.000Z", 120)
    author = dict(base["author"])
    author["public_metrics"] = dict(author["public_metrics"])
    for key, value in changes.items():
        if key.startswith("author.public_metrics."):
            author["public_metrics"][key.rsplit(".", 1)[1]] = value
        elif key.startswith("author."):
            author[key.split(".", 1)[1]] = value
        elif key.startswith("public_metrics."):
            base["public_metrics"] = {**base["public_metrics"], key.split(".", 1)[1]: value}
        else:
            base[key] = value
    return {**base, "author": author}


CASES = [
    (record(created_at="2026-12-01T12:59:00.000Z"), None),  # within the hour of skew
    (record(created_at="9999-12-31T23:59:59.000Z"), future_reason("1 hour")),
    (record(created_at="2026-12-01T13:01:00.000Z"), future_reason("1 hour")),
    (record(created_at="1970-01-01T00:00:00.000Z"), before_platform_reason("created_at")),
    (
        record(**{"author.created_at": "2001-01-01T00:00:00.000Z"}),
        before_platform_reason("author.created_at"),
    ),
    (record(**{"author.created_at": "2026-11-30T11:00:00.000Z"}), BEFORE_ACCOUNT_REASON),
    (record(id="9223372036854775807"), None),  # 19 digits, the largest long
    (record(id="9223372036854775808"), id_reason("id")),
    (record(id="12345678901234567890"), id_reason("id")),
    (record(**{"author.public_metrics.followers_count": MAX_COUNT}), None),
    (
        record(**{"author.public_metrics.followers_count": MAX_COUNT + 1}),
        count_reason("author.public_metrics.followers_count"),
    ),
    (
        record(**{"public_metrics.like_count": 2**64}),
        count_reason("public_metrics.like_count"),
    ),
]


@pytest.mark.parametrize(("candidate", "reason"), CASES)
def test_ingest_refuses_what_cannot_be_real_with_its_reason(
    candidate: dict[str, Any], reason: str | None
) -> None:
    if reason is None:
        assert validate_record(candidate, now=NOW, max_clock_skew="1 hour")["id"] == candidate["id"]
        return
    with pytest.raises(InvalidRecord) as refused:
        validate_record(candidate, now=NOW, max_clock_skew="1 hour")
    assert refused.value.reason == reason


def test_features_give_the_same_reasons_as_ingest(spark: SparkSession) -> None:
    # the processing time is the real clock here: move "now" cases relative to it
    now = datetime.now(UTC)
    cases = [
        (candidate, reason)
        for candidate, reason in CASES
        if not candidate["created_at"].startswith(("2026-12-01T12:59", "2026-12-01T13:01"))
    ]
    ahead = record(
        id="1849000000000000099",
        created_at=now.replace(year=now.year + 1).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
    )
    cases.append((ahead, future_reason("1 hour")))
    parsed = parse_tweets(
        raw_frame(spark, as_lines(*(c for c, _ in cases))), max_clock_skew="1 hour"
    ).cache()
    by_line = {row["raw_line"]: row["reject_reason"] for row in rejected_rows(parsed).collect()}
    by_id = {row["tweet_id"]: row["reject_reason"] for row in rejected_rows(parsed).collect()}
    accepted = {row["tweet_id"] for row in valid_tweets(parsed).collect()}
    for candidate, reason in cases:
        line = as_lines(candidate)[0]
        if reason is None:
            assert candidate["id"] in accepted, candidate
        elif line in by_line:  # Spark could not read the line (a count beyond a long)
            assert by_line[line] == reason
        else:
            assert by_id[candidate["id"]] == reason, candidate


def test_a_quarantined_tweet_is_counted_and_kept_with_its_reason(tmp_path: Path) -> None:
    writer = SnapshotWriter(
        raw_dir=tmp_path / "raw",
        quarantine_dir=tmp_path / "quarantine",
        batch_id="b1",
        tweets_per_file=10,
        max_clock_skew="1 hour",
    )
    writer.offer(record(), "line 1")
    writer.offer(record(id="1849000000000000002", created_at="9999-12-31T23:59:59.000Z"), "line 2")
    writer.close()
    assert (len(writer.known_ids), writer.counts.quarantined) == (1, 1)
    kept = [
        orjson.loads(line)
        for path in (tmp_path / "quarantine").iterdir()
        for line in path.read_bytes().splitlines()
    ]
    assert [(entry["location"], entry["reason"]) for entry in kept] == [
        ("line 2", future_reason("1 hour"))
    ]
    assert kept[0]["record"]["created_at"] == "9999-12-31T23:59:59.000Z"
