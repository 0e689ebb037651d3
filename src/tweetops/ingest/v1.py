"""Tweepy v1.1 statuses (`tweet._json`) mapped onto the normalized record.

The lecture's archives (`twitter-logs/<id>.json`) hold v1.1 statuses. :func:`status_to_record`
maps one onto the X API v2 shape of :mod:`tweetops.ingest.record`: `favorite_count` becomes
`like_count`, the user's `friends_count`, `statuses_count` and `favourites_count` become
`following_count`, `tweet_count` and `like_count` under `author.public_metrics`, entities get
v2 names and `start`/`end` offsets, media ids become media keys, and v1.1 timestamps
(`Wed Oct 10 20:19:24 +0000 2018`) become API times.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tweetops.ingest.record import InvalidRecord, format_api_time, json_type, one_line

V1_TIME_EXAMPLE = "Wed Oct 10 20:19:24 +0000 2018"

_MONTHS = {
    name: number
    for number, name in enumerate(
        "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), start=1
    )
}
_MEDIA_KEY_PREFIX = {"photo": "3", "video": "7", "animated_gif": "16"}


def status_to_record(status: dict[str, Any]) -> dict[str, Any]:
    """Map a tweepy v1.1 status (`tweet._json`) onto the normalized record.

    Raises :class:`InvalidRecord` when the status cannot be mapped (no user object, a date not
    in v1.1 form, entities of the wrong shape); fields that are merely missing or of the wrong
    type are passed on for the writer's validation to name.
    """
    user = status.get("user")
    if type(user) is not dict:
        raise InvalidRecord(f"user: a v1.1 status needs a user object, got JSON {json_type(user)}")
    try:
        return _map_status(status, user)
    except InvalidRecord:
        raise
    except (TypeError, KeyError, IndexError, AttributeError, ValueError) as exc:
        raise InvalidRecord(
            f"v1.1 status could not be mapped: {type(exc).__name__}: {one_line(exc)}"
        ) from exc


def _map_status(status: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    extended = status.get("extended_tweet")
    full = extended if type(extended) is dict else status
    text = full.get("full_text", status.get("full_text", status.get("text")))
    return _compact(
        {
            "id": status.get("id_str"),
            "created_at": parse_v1_time(status.get("created_at"), "created_at"),
            "text": text,
            "lang": status.get("lang") or "und",
            "author_id": user.get("id_str"),
            "public_metrics": _compact(
                {
                    "retweet_count": status.get("retweet_count"),
                    "reply_count": status.get("reply_count") or 0,
                    "like_count": status.get("favorite_count"),
                    "quote_count": status.get("quote_count") or 0,
                }
            ),
            "entities": _map_entities(full.get("entities") or {}),
            "attachments": {"media_keys": _media_keys(full)},
            "referenced_tweets": _referenced_tweets(status),
            "author": _map_user(user),
        }
    )


def _map_user(user: dict[str, Any]) -> dict[str, Any]:
    return _compact(
        {
            "id": user.get("id_str"),
            "username": user.get("screen_name"),
            "created_at": parse_v1_time(user.get("created_at"), "author.created_at"),
            "verified": user.get("verified"),
            "public_metrics": _compact(
                {
                    "followers_count": user.get("followers_count"),
                    "following_count": user.get("friends_count"),
                    "tweet_count": user.get("statuses_count"),
                    "listed_count": user.get("listed_count"),
                    "like_count": user.get("favourites_count"),
                }
            ),
        }
    )


def _map_entities(entities: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {
        "hashtags": [
            {"tag": item["text"], "start": item["indices"][0], "end": item["indices"][1]}
            for item in entities.get("hashtags") or ()
        ],
        "mentions": [
            {
                "username": item["screen_name"],
                "start": item["indices"][0],
                "end": item["indices"][1],
            }
            for item in entities.get("user_mentions") or ()
        ],
        "urls": [
            {
                "url": item["url"],
                "expanded_url": item.get("expanded_url"),
                "start": item["indices"][0],
                "end": item["indices"][1],
            }
            for item in entities.get("urls") or ()
        ],
    }


def _media_keys(full: dict[str, Any]) -> list[str]:
    media = (
        (full.get("extended_entities") or {}).get("media")
        or (full.get("entities") or {}).get("media")
        or ()
    )
    return [f"{_MEDIA_KEY_PREFIX.get(item.get('type'), '3')}_{item['id_str']}" for item in media]


def _referenced_tweets(status: dict[str, Any]) -> list[dict[str, Any]]:
    retweeted = status.get("retweeted_status")
    if type(retweeted) is dict:
        return [{"type": "retweeted", "id": retweeted.get("id_str")}]
    references = []
    if status.get("quoted_status_id_str"):
        references.append({"type": "quoted", "id": status["quoted_status_id_str"]})
    if status.get("in_reply_to_status_id_str"):
        references.append({"type": "replied_to", "id": status["in_reply_to_status_id_str"]})
    return references


def parse_v1_time(value: Any, name: str) -> Any:
    """`Wed Oct 10 20:19:24 +0000 2018` as an API time; non-strings pass on for validation.

    Locale-independent (the month is looked up, the weekday ignored). Raises
    :class:`InvalidRecord` for a string in any other form.
    """
    if type(value) is not str:
        return value
    parts = value.split()
    month = _MONTHS.get(parts[1]) if len(parts) == 6 else None
    try:
        if month is None:
            raise ValueError(value)
        _, _, day, clock, offset, year = parts
        parsed = datetime.strptime(f"{year} {month} {day} {clock} {offset}", "%Y %m %d %H:%M:%S %z")
        return format_api_time(parsed)
    except (ValueError, OverflowError) as exc:
        raise InvalidRecord(
            f"{name}: {_clip(value)!r} is not a v1.1 timestamp like {V1_TIME_EXAMPLE!r}"
        ) from exc


def _compact(mapping: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in mapping.items() if value is not None}


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
