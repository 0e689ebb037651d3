"""Raw X API v2 tweets built in one call, and read by Spark the way the features step reads them."""

from __future__ import annotations

from typing import Any

import orjson
from pyspark.sql import DataFrame, SparkSession

from tweetops.schema import CORRUPT_RECORD_COLUMN, RAW_TWEET_SCHEMA


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
    """`lines` read the way the features step reads raw part files (corrupt lines kept)."""
    return (
        spark.read.schema(RAW_TWEET_SCHEMA)
        .option("columnNameOfCorruptRecord", CORRUPT_RECORD_COLUMN)
        .json(spark.sparkContext.parallelize(lines))
    )


def as_lines(*records: dict[str, Any]) -> list[str]:
    """`records` as JSONL lines."""
    return [orjson.dumps(record).decode() for record in records]
