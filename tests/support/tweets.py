"""Raw X API v2 tweets built in one call, and read by Spark the way the features step reads them."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import orjson
from pyspark.sql import DataFrame, SparkSession

from tweetops.features import read_raw_batch
from tweetops.ingest.snapshot import PART_SUFFIX

# the part files raw_frame writes: removed when the test process exits
_RAW_FRAMES = tempfile.TemporaryDirectory(prefix="tweetops-raw-frames-")


def tweet(
    tweet_id: str,
    user: str,
    created_at: str,
    followers: int,
    *,
    retweet: bool = False,
    reply: bool = False,
    likes: int = 0,
    retweets: int = 0,
    replies: int = 0,
    quotes: int = 0,
    hashtags: int = 0,
    media: bool = False,
    text: str = "hello world",
) -> dict[str, Any]:
    """One X API v2 tweet (with its expanded author) of `user`, as ingest writes it."""
    refs = []
    if retweet:
        refs.append({"type": "retweeted", "id": "1"})
    if reply:
        refs.append({"type": "replied_to", "id": "2"})
    return {
        "id": tweet_id,
        "created_at": created_at,
        "text": text,
        "lang": "en",
        "author_id": user,
        "public_metrics": {
            "retweet_count": retweets,
            "reply_count": replies,
            "like_count": likes,
            "quote_count": quotes,
        },
        "entities": {
            "hashtags": [{"start": 0, "end": 2, "tag": "x"}] * hashtags,
            "mentions": [],
            "urls": [],
        },
        "attachments": {"media_keys": ["3_1"] if media else []},
        "referenced_tweets": refs,
        "author": {
            "id": user,
            "username": f"u{user}",
            "created_at": "2026-09-21T00:00:00.000Z",
            "verified": followers > 1000,
            "public_metrics": {
                "followers_count": followers,
                "following_count": 10,
                "tweet_count": 100 + followers,
                "listed_count": 1,
                "like_count": 5,
            },
        },
    }


def raw_frame(spark: SparkSession, lines: list[str]) -> DataFrame:
    """`lines` read the way the features step reads raw part files (corrupt lines kept): written
    as a part file of their own and read by the step's own reader."""
    folder = Path(tempfile.mkdtemp(dir=_RAW_FRAMES.name))
    (folder / f"part-00000{PART_SUFFIX}").write_text(
        "".join(f"{line}\n" for line in lines), encoding="utf-8"
    )
    return read_raw_batch(spark, folder)


def as_lines(*records: dict[str, Any]) -> list[str]:
    """`records` as JSONL lines."""
    return [orjson.dumps(record).decode() for record in records]
