"""What search and stream ask the X API v2 for: the author expansion and the fields."""

from __future__ import annotations

EXPANSIONS = ["author_id"]
TWEET_FIELDS = [
    "id",
    "created_at",
    "text",
    "lang",
    "author_id",
    "public_metrics",
    "entities",
    "referenced_tweets",
    "attachments",
]
USER_FIELDS = ["id", "username", "created_at", "verified", "public_metrics"]
