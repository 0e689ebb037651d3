"""Archive files of every format the replay source reads, built from normalized records.

Each builder takes normalized records (as :func:`tweetops.ingest.synthetic.generate_tweets`
yields them) and writes what the real tool would have written: twarc2 raw pages or flattened
tweets, X API v2 response pages, or tweepy v1.1 statuses (`twitter-logs/<id_str>.json` as the
lecture saves them, or one status per line). A path ending in `.gz` is gzip-compressed.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import IO, Any

import orjson

TWARC_META = {
    "url": "https://api.twitter.com/2/tweets/search/all?query=spark",
    "version": "2.14.0",
    "retrieved_at": "2026-10-15T12:00:00+00:00",
}
MEDIA_TYPES = {"3": "photo", "7": "video", "16": "animated_gif"}
WEEKDAYS = "Mon Tue Wed Thu Fri Sat Sun".split()
MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
V1_SOURCE = '<a href="https://mobile.twitter.com" rel="nofollow">Twitter Web App</a>'


def v1_time(api_time: str) -> str:
    """`2026-10-01T18:03:12.000Z` in v1.1 form: `Thu Oct 01 18:03:12 +0000 2026`."""
    value = datetime.fromisoformat(api_time.replace("Z", "+00:00"))
    return (
        f"{WEEKDAYS[value.weekday()]} {MONTHS[value.month - 1]} "
        f"{value:%d %H:%M:%S} +0000 {value.year:04d}"
    )


def v1_user(author: dict[str, Any]) -> dict[str, Any]:
    """A normalized author as a v1.1 user object."""
    metrics = author["public_metrics"]
    return {
        "id": int(author["id"]),
        "id_str": author["id"],
        "name": author["username"].title(),
        "screen_name": author["username"],
        "location": "",
        "description": "",
        "url": None,
        "protected": False,
        "followers_count": metrics["followers_count"],
        "friends_count": metrics["following_count"],
        "listed_count": metrics["listed_count"],
        "created_at": v1_time(author["created_at"]),
        "favourites_count": metrics.get("like_count", 0),
        "utc_offset": None,
        "time_zone": None,
        "geo_enabled": False,
        "verified": author["verified"],
        "statuses_count": metrics["tweet_count"],
        "lang": None,
        "profile_image_url_https": "https://pbs.twimg.com/profile_images/0/x_normal.jpg",
        "default_profile": True,
        "following": None,
        "notifications": None,
    }


def v1_entities(entities: dict[str, Any]) -> dict[str, Any]:
    """Normalized entities as v1.1 entities (`text`, `screen_name`, `indices`)."""
    return {
        "hashtags": [
            {"text": h["tag"], "indices": [h["start"], h["end"]]}
            for h in entities.get("hashtags", [])
        ],
        "symbols": [],
        "user_mentions": [
            {
                "screen_name": m["username"],
                "name": m["username"].title(),
                "id": 1,
                "id_str": "1",
                "indices": [m["start"], m["end"]],
            }
            for m in entities.get("mentions", [])
        ],
        "urls": [
            {
                "url": u["url"],
                "expanded_url": u.get("expanded_url"),
                "display_url": (u.get("expanded_url") or u["url"]).split("//")[-1][:26],
                "indices": [u["start"], u["end"]],
            }
            for u in entities.get("urls", [])
        ],
    }


def v1_media(media_keys: list[str]) -> list[dict[str, Any]]:
    """Media keys (`3_<id>`) as v1.1 `extended_entities.media` items."""
    items = []
    for key in media_keys:
        prefix, _, media_id = key.partition("_")
        items.append(
            {
                "id": int(media_id),
                "id_str": media_id,
                "indices": [0, 0],
                "media_url_https": f"https://pbs.twimg.com/media/{media_id}.jpg",
                "url": "https://t.co/media",
                "type": MEDIA_TYPES.get(prefix, "photo"),
                "sizes": {"large": {"w": 1200, "h": 800, "resize": "fit"}},
            }
        )
    return items


def to_v1_status(
    record: dict[str, Any], *, mode: str = "extended", with_v2_counts: bool = False
) -> dict[str, Any]:
    """A normalized record as the v1.1 status tweepy's `tweet._json` holds.

    `mode`: "extended" (REST with `tweet_mode=extended`: `full_text`), "compat" (streaming
    compatibility mode: a text truncated at 140 characters plus `extended_tweet` with the full
    text and entities) or "classic" (`text` only). v1.1 has no reply and quote counts unless
    `with_v2_counts` (premium/enterprise payloads).
    """
    metrics = record["public_metrics"]
    refs = {ref["type"]: ref["id"] for ref in record.get("referenced_tweets", [])}
    entities = v1_entities(record.get("entities", {}))
    media = v1_media(record.get("attachments", {}).get("media_keys", []))
    status: dict[str, Any] = {
        "created_at": v1_time(record["created_at"]),
        "id": int(record["id"]),
        "id_str": record["id"],
        "source": V1_SOURCE,
        "truncated": False,
        "in_reply_to_status_id": int(refs["replied_to"]) if "replied_to" in refs else None,
        "in_reply_to_status_id_str": refs.get("replied_to"),
        "in_reply_to_user_id": None,
        "in_reply_to_screen_name": None,
        "user": v1_user(record["author"]),
        "geo": None,
        "coordinates": None,
        "place": None,
        "contributors": None,
        "is_quote_status": "quoted" in refs,
        "retweet_count": metrics["retweet_count"],
        "favorite_count": metrics["like_count"],
        "favorited": False,
        "retweeted": False,
        "lang": record.get("lang", "und"),
    }
    if "quoted" in refs:
        status["quoted_status_id"] = int(refs["quoted"])
        status["quoted_status_id_str"] = refs["quoted"]
    if "retweeted" in refs:
        status["retweeted_status"] = _retweeted_status(record, refs["retweeted"])
    if with_v2_counts:
        status["reply_count"] = metrics["reply_count"]
        status["quote_count"] = metrics.get("quote_count", 0)
    _put_text(status, record["text"], entities, media, mode)
    return status


def _put_text(
    status: dict[str, Any],
    text: str,
    entities: dict[str, Any],
    media: list[dict[str, Any]],
    mode: str,
) -> None:
    extended_entities = {"media": media} if media else None
    if mode == "extended":
        status.update(full_text=text, display_text_range=[0, len(text)], entities=entities)
    elif mode == "compat" and len(text) > 140:
        status.update(
            text=text[:139] + "\u2026 https://t.co/more",
            truncated=True,
            entities={"hashtags": [], "symbols": [], "user_mentions": [], "urls": []},
        )
        status["extended_tweet"] = {
            "full_text": text,
            "display_text_range": [0, len(text)],
            "entities": entities,
        }
        if extended_entities:
            status["extended_tweet"]["extended_entities"] = extended_entities
        return
    else:
        status.update(text=text, entities=entities)
    if extended_entities:
        status["extended_entities"] = extended_entities


def _retweeted_status(record: dict[str, Any], original_id: str) -> dict[str, Any]:
    original_text = record["text"].split(": ", 1)[-1]
    return {
        "created_at": v1_time(record["created_at"]),
        "id": int(original_id),
        "id_str": original_id,
        "text": original_text,
        "truncated": False,
        "entities": {"hashtags": [], "symbols": [], "user_mentions": [], "urls": []},
        "user": v1_user(record["author"]),
        "retweet_count": 0,
        "favorite_count": 0,
        "lang": record.get("lang", "und"),
    }


def expected_from_v1(record: dict[str, Any], *, with_v2_counts: bool = False) -> dict[str, Any]:
    """What replaying `to_v1_status(record)` yields: v1.1 times have whole seconds, and v1.1
    carries no reply or quote counts unless `with_v2_counts`."""
    expected = {**record, "created_at": record["created_at"][:19] + ".000Z"}
    if not with_v2_counts:
        expected["public_metrics"] = {
            **record["public_metrics"],
            "reply_count": 0,
            "quote_count": 0,
        }
    return expected


def to_v2_tweet(record: dict[str, Any]) -> dict[str, Any]:
    """A normalized record as X API v2 returns the tweet: no `author`, empty fields left out."""
    tweet = {
        key: value
        for key, value in record.items()
        if key not in ("author", "entities", "attachments", "referenced_tweets")
    }
    tweet["edit_history_tweet_ids"] = [record["id"]]
    tweet["conversation_id"] = record["id"]
    entities = {kind: items for kind, items in record.get("entities", {}).items() if items}
    if entities:
        tweet["entities"] = entities
    if record.get("attachments", {}).get("media_keys"):
        tweet["attachments"] = record["attachments"]
    if record.get("referenced_tweets"):
        tweet["referenced_tweets"] = record["referenced_tweets"]
    return tweet


def to_v2_user(author: dict[str, Any]) -> dict[str, Any]:
    """A normalized author as an X API v2 user object (as in `includes.users`)."""
    return {**author, "name": author["username"].title()}


def to_v2_page(records: list[dict[str, Any]], *, twarc: bool = False) -> dict[str, Any]:
    """One X API v2 response page: tweets in `data`, their authors once in `includes.users`."""
    users: dict[str, dict[str, Any]] = {}
    for record in records:
        users.setdefault(record["author"]["id"], to_v2_user(record["author"]))
    page: dict[str, Any] = {
        "data": [to_v2_tweet(record) for record in records],
        "includes": {"users": list(users.values())},
        "meta": {
            "result_count": len(records),
            "newest_id": max((r["id"] for r in records), key=int, default=None),
            "oldest_id": min((r["id"] for r in records), key=int, default=None),
        },
    }
    if twarc:
        page["__twarc"] = TWARC_META
    return page


def expected_from_pages(records: Iterable[dict[str, Any]], page_size: int) -> list[dict[str, Any]]:
    """What replaying pages of `records` yields: a page holds one user object per author (the
    first one in the page), so each tweet gets its author as of that object."""
    expected = []
    for chunk in pages(records, page_size):
        authors: dict[str, dict[str, Any]] = {}
        for record in chunk:
            author = authors.setdefault(record["author"]["id"], record["author"])
            expected.append({**record, "author": author})
    return expected


def to_twarc2_flat(record: dict[str, Any]) -> dict[str, Any]:
    """A normalized record as `twarc2 flatten` writes it: v2 tweet, author embedded, __twarc."""
    return {**to_v2_tweet(record), "author": to_v2_user(record["author"]), "__twarc": TWARC_META}


def pages(records: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    """`records` in lists of at most `size`."""
    iterator = iter(records)
    while chunk := list(islice(iterator, size)):
        yield chunk


def open_archive(path: Path) -> IO[bytes]:
    """Open `path` for writing, gzip-compressed when its name ends in `.gz`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return gzip.open(path, "wb") if path.name.endswith(".gz") else path.open("wb")


def write_lines(path: Path, values: Iterable[Any]) -> Path:
    """Write each value as one JSON line."""
    with open_archive(path) as handle:
        for value in values:
            handle.write(orjson.dumps(value, option=orjson.OPT_APPEND_NEWLINE))
    return path


def write_json(path: Path, value: Any, *, pretty: bool = False) -> Path:
    """Write one JSON document, pretty-printed like `json.dump(..., indent=2)` if asked."""
    with open_archive(path) as handle:
        handle.write(orjson.dumps(value, option=orjson.OPT_INDENT_2 if pretty else 0))
    return path


def write_twarc2_raw(path: Path, records: Iterable[dict[str, Any]], page_size: int = 100) -> Path:
    """twarc2's raw output: one API response page (with `__twarc`) per line."""
    return write_lines(path, (to_v2_page(chunk, twarc=True) for chunk in pages(records, page_size)))


def write_twarc2_flat(path: Path, records: Iterable[dict[str, Any]]) -> Path:
    """`twarc2 flatten` output: one tweet per line, author embedded."""
    return write_lines(path, (to_twarc2_flat(record) for record in records))


def write_v2_page(path: Path, records: list[dict[str, Any]], *, pretty: bool = True) -> Path:
    """One X API v2 response page saved as a `.json` file."""
    return write_json(path, to_v2_page(records), pretty=pretty)


def write_v2_pages(path: Path, records: Iterable[dict[str, Any]], page_size: int = 100) -> Path:
    """A `.json` file holding a JSON array of X API v2 response pages."""
    return write_json(path, [to_v2_page(chunk) for chunk in pages(records, page_size)])


def write_twitter_logs(
    folder: Path, records: Iterable[dict[str, Any]], *, mode: str = "compat", pretty: bool = False
) -> list[Path]:
    """The lecture's `twitter-logs/<id_str>.json`: one v1.1 status per file."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for record in records:
        status = to_v1_status(record, mode=mode)
        written.append(write_json(folder / f"{status['id_str']}.json", status, pretty=pretty))
    return written


def write_v1_jsonl(
    path: Path,
    records: Iterable[dict[str, Any]],
    *,
    mode: str = "extended",
    with_v2_counts: bool = False,
) -> Path:
    """v1.1 statuses, one per line."""
    return write_lines(
        path, (to_v1_status(record, mode=mode, with_v2_counts=with_v2_counts) for record in records)
    )
