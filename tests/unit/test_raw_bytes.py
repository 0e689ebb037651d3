"""Bad bytes in a raw part file: ingest and features agree, line by line, on what is a record.

Ingest reads the existing part files of a snapshot (an append drops their ids as duplicates);
features read them with Spark's JSON reader. A line one of them reads and the other does not
would be a tweet counted twice or a duplicate written again, so both read the same lines.
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import orjson
import pytest
from pyspark.sql import SparkSession

from tests.support.tweets import tweet
from tweetops.features import parse_tweets, read_raw_batch, rejected_rows, valid_tweets
from tweetops.ingest.record import InvalidRecord, validate_record
from tweetops.ingest.snapshot import existing_tweet_ids, iter_part_records
from tweetops.schema import MAX_TEXT_CHARS

BOM = b"\xef\xbb\xbf"


def _line(tweet_id: int) -> bytes:
    return orjson.dumps(tweet(str(tweet_id), "c", "2026-10-01T00:00:00.000Z", 1))


def _with_text(tweet_id: int, raw: bytes) -> bytes:
    return _line(tweet_id).replace(b'"text":"', b'"text":"' + raw, 1)


NOT_UTF8 = _with_text(3, b"\xff\xfe")
WITH_NUL = _with_text(4, b"\x00")
LINES = [
    BOM + _line(1),  # a file saved by an editor that writes a byte order mark
    _line(2),
    NOT_UTF8,
    WITH_NUL,
    _line(5) + b"\x00",  # after the object: the record is whole, Spark reads it
    _with_text(6, b"\\u0000"),  # an escaped NUL is JSON
    BOM + _line(7),  # a BOM in the middle (two files concatenated)
]


@pytest.fixture
def part_file(tmp_path: Path) -> Path:
    raw = tmp_path / "tweets"
    raw.mkdir()
    (raw / "part-bytes.jsonl").write_bytes(b"\n".join(LINES) + b"\n")
    return raw


def test_ingest_reads_past_a_byte_order_mark_and_names_the_bad_lines(
    part_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    unreadable: list[int] = []
    ids = [r["id"] for r in iter_part_records(part_file, lambda _, n: unreadable.append(n))]
    assert ids == ["1", "2", "5", "6", "7"]
    assert unreadable == [3, 4]
    with caplog.at_level(logging.WARNING):
        assert existing_tweet_ids(part_file) == {"1", "2", "5", "6", "7"}
    assert "2 unreadable line(s) (first: line 3)" in caplog.text


def test_features_read_the_same_lines_and_keep_the_bytes_of_the_rejected(
    spark: SparkSession, part_file: Path
) -> None:
    parsed = parse_tweets(read_raw_batch(spark, part_file)).cache()
    assert sorted(r["tweet_id"] for r in valid_tweets(parsed).collect()) == [
        "1",
        "2",
        "5",
        "6",
        "7",
    ]
    rejected = {r["reject_reason"]: r for r in rejected_rows(parsed).collect()}
    assert set(rejected) == {
        "line has bytes that are not UTF-8 (the line as it was is in raw_line_base64)",
        "line has a NUL byte that is not escaped as \\u0000",
    }
    not_utf8 = rejected[
        "line has bytes that are not UTF-8 (the line as it was is in raw_line_base64)"
    ]
    assert base64.b64decode(not_utf8["raw_line_base64"]) == NOT_UTF8
    assert not_utf8["raw_line"] == NOT_UTF8.decode("utf-8", errors="replace")
    with_nul = rejected["line has a NUL byte that is not escaped as \\u0000"]
    assert with_nul["raw_line"] == WITH_NUL.decode() and with_nul["raw_line_base64"] is None


HUGE_TEXT = 50_000_000  # a 50 MB line: valid JSON, its text longer than Spark reads


@pytest.fixture
def huge_line(tmp_path: Path) -> Path:
    raw = tmp_path / "huge"
    raw.mkdir()
    huge = tweet("9", "c", "2026-10-01T00:00:00.000Z", 1)
    huge["text"] = "x" * HUGE_TEXT
    (raw / "part-huge.jsonl").write_bytes(_line(8) + b"\n" + orjson.dumps(huge) + b"\n")
    return raw


def test_ingest_names_a_50_mb_line_unreadable_as_features_reject_it(huge_line: Path) -> None:
    unreadable: list[int] = []
    ids = [r["id"] for r in iter_part_records(huge_line, lambda _, n: unreadable.append(n))]
    assert (ids, unreadable) == (["8"], [2])


@pytest.mark.slow  # Spark reads a 50 MB line
def test_features_reject_a_50_mb_line_with_its_reason(spark: SparkSession, huge_line: Path) -> None:
    parsed = parse_tweets(read_raw_batch(spark, huge_line))
    assert [r["tweet_id"] for r in valid_tweets(parsed).collect()] == ["8"]
    reasons = [r["reject_reason"] for r in rejected_rows(parsed).select("reject_reason").collect()]
    length = len(
        orjson.dumps({**tweet("9", "c", "2026-10-01T00:00:00.000Z", 1), "text": "x" * HUGE_TEXT})
    )
    assert reasons == [
        f"line is {length} characters, longer than Spark's JSON reader accepts (20000000)"
    ]


def test_features_refuse_a_text_over_the_api_limit_in_ingest_words(
    spark: SparkSession, tmp_path: Path
) -> None:
    long_text = tweet("10", "c", "2026-10-01T00:00:00.000Z", 1)
    long_text["text"] = "x" * (MAX_TEXT_CHARS + 1)
    with pytest.raises(InvalidRecord) as at_ingest:
        validate_record(long_text)
    (tmp_path / "part-long.jsonl").write_bytes(orjson.dumps(long_text) + b"\n")
    parsed = parse_tweets(read_raw_batch(spark, tmp_path))
    # the reason alone: the query reads no other column, and still parses the text
    reasons = [r["reject_reason"] for r in parsed.select("reject_reason").collect()]
    assert reasons == [at_ingest.value.reason]


def test_both_steps_split_lines_at_a_lone_carriage_return(
    spark: SparkSession, tmp_path: Path
) -> None:
    # a file saved with old Mac line ends, or two files joined with mixed ones
    ends = (b"\r", b"\r\n", b"\r", b"\n")
    (tmp_path / "part-cr.jsonl").write_bytes(
        b"".join(_line(n) + end for n, end in enumerate(ends, start=1))
    )
    assert [r["id"] for r in iter_part_records(tmp_path)] == ["1", "2", "3", "4"]
    ids = [
        r["tweet_id"] for r in valid_tweets(parse_tweets(read_raw_batch(spark, tmp_path))).collect()
    ]
    assert sorted(ids) == ["1", "2", "3", "4"]
