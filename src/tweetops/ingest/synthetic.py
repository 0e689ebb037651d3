"""A seeded generator of realistic tweets, the offline default source.

Same seed and sizes give byte-identical part files. Distributions are heavy-tailed like the real
thing: follower counts are log-normal (median ~250, a few accounts in the millions), a few users
write most tweets (log-normal activity weights), hashtags follow a Zipf law, posting peaks in the
evening (UTC).

Engagement depends on the author and the tweet through one documented function plus noise, so a
model has something real (and not everything) to learn. For every tweet but a retweet:

    log_mu = -1.2
             + 0.55 * log1p(followers)          # reach
             + 0.60 * verified
             + 0.45 * has_media
             + 0.15 * min(hashtags, 3) - 0.10 * max(hashtags - 3, 0)
             - 0.80 * is_reply + 0.25 * is_quote - 0.10 * has_url
             + 0.35 * cos(2 * pi * (hour - 19) / 24)    # evening peak
             + 0.30 * exp(-((text_length - 140) / 80) ** 2)
             + LANG_EFFECT[lang]
             + author_effect                    # per author, N(0, 0.35), not observable
             + noise                            # per tweet, N(0, 0.5)
    total    ~ Poisson(exp(min(log_mu, 14)) * (1 - exp(-age / 6 h)))
    likes    = floor(0.7 * total + (u1 - 0.5) * sqrt(total)), clipped to [0, total]
    retweets = min(round(rest * (0.35 + 0.4 * u2)), rest)      # rest = total - likes
    replies  = min(round(rest * (0.5 + 0.4 * u3)), rest)       # rest = total - likes - retweets
    quotes   = rest - replies

with u1, u2, u3 ~ Uniform(0, 1), drawn per tweet.

`age` is the tweet's age when it was fetched. Every tweet is fetched at the end of the window
(`fetched_at` = start + days, as one crawl of the window would), so ages run from `days` down to
nothing: a tweet has 98% of its engagement after a day, 63% after 6 hours, a quarter after 1.7
hours; the last hours of the window carry labels that are not yet what they will be.

Retweets (25% of tweets) carry zero metrics of their own and are not training rows, but they do
count as activity of their author. Profile metrics drift over the window (followers grow, the
tweet count rises with each tweet), so "the profile of the latest tweet" is a real choice.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from tweetops.ingest.record import format_api_time

TWITTER_EPOCH_MS = 1288834974657
LANGS = ("en", "es", "pt", "ja", "fr", "de", "hi", "ar", "und")
LANG_SHARE = (0.55, 0.12, 0.08, 0.07, 0.05, 0.04, 0.04, 0.03, 0.02)
LANG_EFFECT = {
    "en": 0.20,
    "es": 0.05,
    "pt": 0.10,
    "ja": 0.30,
    "fr": -0.05,
    "de": -0.10,
    "hi": 0.15,
    "ar": 0.00,
    "und": -0.50,
}
ACCRUAL_HOURS = 6.0
HOUR_WEIGHTS = tuple(1.0 + 0.8 * math.cos(2 * math.pi * (h - 19) / 24) for h in range(24))
WORDS = tuple(
    "data model stream spark tweet people today great new time update learn python news "
    "week open source think release world best launch join live team love build share "
    "city game music market climate health science vote school coffee travel night really "
    "just more about what when this that with from your have will been they their there "
    "could would make good first last long little right big high different small large "
    "next early young important public bad same able".split()
)
HASHTAGS = tuple(
    "AI MachineLearning DataScience Python BigData Spark MLOps COVID19 Climate Music Football "
    "Travel Food Tech Startup Crypto Gaming News Science Health Art Photography Books Coding "
    "OpenSource Cloud DevOps Election Movies Fitness".split()
)
NAME_PARTS = tuple(
    "ana ben cara dev eli fay gus hana ivan jo kai lea max nia omar pia quinn ray sam tara "
    "uma vic wen xia yuri zoe data news daily real the tech fan club live".split()
)


@dataclass(frozen=True)
class SyntheticSpec:
    """How many tweets by how many users, over which window, from which seed."""

    seed: int
    n_tweets: int
    n_users: int
    start_time: datetime
    days: int
    # when every tweet is fetched; None: at the end of the window
    fetched_at: datetime | None = None


@dataclass(frozen=True)
class _TweetDraws:
    """The per-tweet random arrays, drawn up front (index `i` is the `i`-th tweet in time order).

    The draw order is part of the output: drawing them in another order changes every tweet.
    """

    author: np.ndarray  # index of the author in the users table
    offset_ms: np.ndarray  # milliseconds after the start of the window, ascending
    kind: np.ndarray  # 0 original, 1 retweet, 2 reply, 3 quote
    own_lang: np.ndarray  # written in the author's language, else in `random_lang`
    random_lang: np.ndarray
    n_hashtags: np.ndarray
    n_mentions: np.ndarray
    has_url: np.ndarray
    has_media: np.ndarray
    n_words: np.ndarray
    noise: np.ndarray  # the per-tweet term of log_mu
    likes_share: np.ndarray  # u1, u2, u3 of the engagement split
    retweets_share: np.ndarray
    replies_share: np.ndarray


def generate_tweets(spec: SyntheticSpec) -> Iterator[dict[str, Any]]:
    """Yield `spec.n_tweets` normalized records, oldest first, deterministically from the seed."""
    rng = np.random.default_rng(spec.seed)
    users = _generate_users(rng, spec)
    draws = _draw_tweets(rng, spec, users["activity"])
    hashtag_weights = _zipf_weights(len(HASHTAGS))
    start_ms = int(spec.start_time.timestamp() * 1000)
    window_ms = spec.days * 86_400_000
    seen_by_author = np.zeros(spec.n_users, dtype=np.int64)
    emitted_ids: list[int] = []
    fetch_time = spec.fetched_at or spec.start_time + timedelta(days=spec.days)
    fetch_ms = int(fetch_time.timestamp() * 1000)
    fetched_at = format_api_time(fetch_time)

    for i in range(spec.n_tweets):
        u = int(draws.author[i])
        created_ms = start_ms + int(draws.offset_ms[i])
        tweet_id = ((created_ms - TWITTER_EPOCH_MS) << 22) | (i % (1 << 22))
        seen_by_author[u] += 1
        followers = int(
            users["followers"][u] * (1.0 + users["growth"][u] * (draws.offset_ms[i] / window_ms))
        )
        lang = users["lang"][u] if draws.own_lang[i] else LANGS[draws.random_lang[i]]
        tweet_kind = int(draws.kind[i]) if emitted_ids else 0  # the first tweet is original

        # one generator per tweet for its text, references and engagement total
        word_rng = np.random.default_rng([spec.seed, i])
        text, entities = _compose_text(
            word_rng,
            int(draws.n_words[i]),
            int(draws.n_hashtags[i]),
            int(draws.n_mentions[i]),
            bool(draws.has_url[i]),
            hashtag_weights,
            users["username"],
            tweet_kind == 2,
        )
        record = _compose_record(
            tweet_id,
            created_ms,
            text,
            lang,
            entities,
            bool(draws.has_media[i]),
            _author_profile(users, u, followers, seen_by_author[u]),
        )
        if tweet_kind == 1:
            _make_retweet(record, word_rng, emitted_ids, users["username"])
        else:
            if tweet_kind in (2, 3):
                ref_type = "replied_to" if tweet_kind == 2 else "quoted"
                record["referenced_tweets"] = [_reference(word_rng, emitted_ids, ref_type)]
            log_mu = (
                engagement_log_mean(
                    followers=followers,
                    verified=bool(users["verified"][u]),
                    has_media=bool(draws.has_media[i]),
                    hashtags=len(entities["hashtags"]),
                    is_reply=tweet_kind == 2,
                    is_quote=tweet_kind == 3,
                    has_url=bool(entities["urls"]),
                    hour=int((created_ms // 3_600_000) % 24),
                    text_length=len(record["text"]),
                    lang=lang,
                )
                + users["effect"][u]
                + draws.noise[i]
            )
            age_hours = (fetch_ms - created_ms) / 3_600_000
            total = int(word_rng.poisson(math.exp(min(log_mu, 14.0)) * accrued_share(age_hours)))
            record["public_metrics"] = split_engagement(
                total, draws.likes_share[i], draws.retweets_share[i], draws.replies_share[i]
            )
        emitted_ids.append(tweet_id)
        record["fetched_at"] = fetched_at
        yield record


def _draw_tweets(
    rng: np.random.Generator, spec: SyntheticSpec, activity: np.ndarray
) -> _TweetDraws:
    """Draw every per-tweet array from `rng`, in the one order the output depends on."""
    n = spec.n_tweets
    author, offset_ms = _draw_schedule(rng, spec, activity)
    kind = rng.choice(4, size=n, p=[0.55, 0.25, 0.14, 0.06])  # original, retweet, reply, quote
    own_lang = rng.random(n) < 0.9
    random_lang = rng.choice(len(LANGS), size=n, p=LANG_SHARE)
    n_hashtags = np.minimum(rng.poisson(0.7, size=n) + (rng.random(n) < 0.05) * 4, 8)
    n_mentions = np.minimum(rng.poisson(0.35, size=n), 4)
    has_url = rng.random(n) < 0.3
    has_media = rng.random(n) < 0.22
    n_words = np.clip(np.round(rng.lognormal(2.4, 0.55, size=n)), 2, 40).astype(int)
    noise = rng.normal(0.0, 0.5, size=n)
    likes_share, retweets_share, replies_share = rng.random((3, n))
    return _TweetDraws(
        author,
        offset_ms,
        kind,
        own_lang,
        random_lang,
        n_hashtags,
        n_mentions,
        has_url,
        has_media,
        n_words,
        noise,
        likes_share,
        retweets_share,
        replies_share,
    )


def _draw_schedule(
    rng: np.random.Generator, spec: SyntheticSpec, activity: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Who posts when: author indices and millisecond offsets, sorted by time (stably)."""
    n = spec.n_tweets
    author = rng.choice(spec.n_users, size=n, p=activity / activity.sum())
    day = rng.integers(0, spec.days, size=n)
    hour = rng.choice(24, size=n, p=np.array(HOUR_WEIGHTS) / sum(HOUR_WEIGHTS))
    second_of_hour = rng.integers(0, 3600, size=n)
    millis = rng.integers(0, 1000, size=n)
    offset_ms = ((day * 24 + hour) * 3600 + second_of_hour) * 1000 + millis
    order = np.argsort(offset_ms, kind="stable")
    return author[order], offset_ms[order]


def _author_profile(
    users: dict[str, Any], u: int, followers: int, seen: np.integer
) -> dict[str, Any]:
    """User `u`'s profile as of its `seen`-th tweet: the tweet and like counts have grown."""
    return {
        "id": users["id"][u],
        "username": users["username"][u],
        "created_at": users["created_at"][u],
        "verified": bool(users["verified"][u]),
        "public_metrics": {
            "followers_count": followers,
            "following_count": int(users["following"][u]),
            "tweet_count": int(users["tweet_count"][u] + seen),
            "listed_count": int(users["listed"][u]),
            "like_count": int(users["likes"][u] + 3 * seen),
        },
    }


def _compose_record(
    tweet_id: int,
    created_ms: int,
    text: str,
    lang: str,
    entities: dict[str, list[dict[str, Any]]],
    has_media: bool,
    author: dict[str, Any],
) -> dict[str, Any]:
    """One normalized record with zero metrics and no references (an original, so far)."""
    return {
        "id": str(tweet_id),
        "created_at": format_api_time(datetime.fromtimestamp(created_ms / 1000, tz=UTC)),
        "text": text,
        "lang": lang,
        "author_id": author["id"],
        "public_metrics": {"retweet_count": 0, "reply_count": 0, "like_count": 0, "quote_count": 0},
        "entities": entities,
        "attachments": {"media_keys": [f"3_{tweet_id}"] if has_media else []},
        "referenced_tweets": [],
        "author": author,
    }


def _reference(rng: np.random.Generator, emitted_ids: list[int], ref_type: str) -> dict[str, str]:
    """A reference of `ref_type` to one earlier tweet, drawn uniformly."""
    target = emitted_ids[int(rng.integers(0, len(emitted_ids)))]
    return {"type": ref_type, "id": str(target)}


def _make_retweet(
    record: dict[str, Any], rng: np.random.Generator, emitted_ids: list[int], usernames: list[str]
) -> None:
    """Turn `record` into a retweet of an earlier tweet: `RT @user: ` text, shifted entities."""
    record["referenced_tweets"] = [_reference(rng, emitted_ids, "retweeted")]
    text = record["text"]
    record["text"] = f"RT @{usernames[int(rng.integers(0, len(usernames)))]}: " + text
    record["entities"] = _shift_entities(record["entities"], len(record["text"]) - len(text))


def split_engagement(
    total: int, likes_share: float, retweets_share: float, replies_share: float
) -> dict[str, int]:
    """Split `total` engagements into public metrics (see the module docstring).

    The shares are the tweet's uniform draws u1, u2, u3.
    """
    likes = int(np.floor(total * 0.7 + (likes_share - 0.5) * math.sqrt(total)))
    likes = min(max(likes, 0), total)
    rest = total - likes
    retweets = min(round(rest * (0.35 + 0.4 * retweets_share)), rest)
    rest -= retweets
    replies = min(round(rest * (0.5 + 0.4 * replies_share)), rest)
    return {
        "retweet_count": retweets,
        "reply_count": replies,
        "like_count": likes,
        "quote_count": rest - replies,
    }


def accrued_share(age_hours: float) -> float:
    """The share of its engagement a tweet has `age_hours` after it was posted (see above)."""
    return 1.0 - math.exp(-max(age_hours, 0.0) / ACCRUAL_HOURS)


def engagement_log_mean(
    *,
    followers: int,
    verified: bool,
    has_media: bool,
    hashtags: int,
    is_reply: bool,
    is_quote: bool,
    has_url: bool,
    hour: int,
    text_length: int,
    lang: str,
) -> float:
    """The observable part of log expected engagement (see the module docstring)."""
    return (
        -1.2
        + 0.55 * math.log1p(followers)
        + 0.60 * verified
        + 0.45 * has_media
        + 0.15 * min(hashtags, 3)
        - 0.10 * max(hashtags - 3, 0)
        - 0.80 * is_reply
        + 0.25 * is_quote
        - 0.10 * has_url
        + 0.35 * math.cos(2 * math.pi * (hour - 19) / 24)
        + 0.30 * math.exp(-(((text_length - 140) / 80) ** 2))
        + LANG_EFFECT.get(lang, 0.0)
    )


def _generate_users(rng: np.random.Generator, spec: SyntheticSpec) -> dict[str, Any]:
    m = spec.n_users
    followers = np.floor(rng.lognormal(5.5, 2.2, size=m)).astype(np.int64)
    verified = rng.random(m) < 1.0 / (1.0 + np.exp(-(-7.0 + 0.6 * np.log1p(followers))))
    account_age_days = rng.integers(30, 5000, size=m)
    ids = 1_000_000_000 + np.arange(m, dtype=np.int64) * 7919 + rng.integers(0, 7919, size=m)
    first, second = rng.integers(0, len(NAME_PARTS), size=(2, m))
    return {
        "id": [str(v) for v in ids],
        "username": [
            f"{NAME_PARTS[a]}_{NAME_PARTS[b]}{i}"
            for i, (a, b) in enumerate(zip(first, second, strict=True))
        ],
        "created_at": [
            format_api_time(spec.start_time - timedelta(days=int(d), seconds=int(s)))
            for d, s in zip(account_age_days, rng.integers(0, 86400, size=m), strict=True)
        ],
        "followers": followers,
        "following": np.floor(rng.lognormal(5.6, 1.1, size=m)).astype(np.int64),
        "tweet_count": np.floor(rng.lognormal(7.5, 1.6, size=m)).astype(np.int64),
        "listed": rng.poisson(0.02 * np.power(followers, 0.85)),
        "likes": np.floor(rng.lognormal(7.0, 1.8, size=m)).astype(np.int64),
        "verified": verified,
        "growth": np.clip(rng.normal(0.02, 0.02, size=m), -0.01, 0.2),
        "activity": rng.lognormal(0.0, 1.2, size=m),
        "effect": rng.normal(0.0, 0.35, size=m),
        "lang": [LANGS[k] for k in rng.choice(len(LANGS), size=m, p=LANG_SHARE)],
    }


def _zipf_weights(size: int) -> np.ndarray:
    weights: np.ndarray = 1.0 / np.arange(1, size + 1)
    normalised: np.ndarray = weights / weights.sum()
    return normalised


def _compose_text(
    rng: np.random.Generator,
    n_words: int,
    n_hashtags: int,
    n_mentions: int,
    has_url: bool,
    hashtag_weights: np.ndarray,
    usernames: list[str],
    is_reply: bool,
) -> tuple[str, dict[str, list[dict[str, Any]]]]:
    """Build tweet text and X API v2 entities whose start/end indices match the text."""
    pieces: list[tuple[str, str]] = []
    if is_reply:
        pieces.append(("mention", usernames[int(rng.integers(0, len(usernames)))]))
    pieces.extend(("word", WORDS[int(k)]) for k in rng.integers(0, len(WORDS), size=n_words))
    for _ in range(n_mentions):
        pieces.insert(
            int(rng.integers(0, len(pieces) + 1)),
            ("mention", usernames[int(rng.integers(0, len(usernames)))]),
        )
    tags = rng.choice(len(HASHTAGS), size=n_hashtags, p=hashtag_weights)
    pieces.extend(("hashtag", HASHTAGS[int(t)]) for t in tags)
    if has_url:
        slug = "".join(chr(97 + int(c)) for c in rng.integers(0, 26, size=10))
        pieces.append(("url", f"https://t.co/{slug}"))

    text = ""
    entities: dict[str, list[dict[str, Any]]] = {"hashtags": [], "mentions": [], "urls": []}
    for kind, value in pieces:
        shown = {"word": value, "mention": f"@{value}", "hashtag": f"#{value}", "url": value}[kind]
        if len(text) + len(shown) + 1 > 280:
            break
        start = len(text) + (1 if text else 0)
        text = f"{text} {shown}" if text else shown
        end = start + len(shown)
        if kind == "mention":
            entities["mentions"].append({"start": start, "end": end, "username": value})
        elif kind == "hashtag":
            entities["hashtags"].append({"start": start, "end": end, "tag": value})
        elif kind == "url":
            entities["urls"].append(
                {
                    "start": start,
                    "end": end,
                    "url": value,
                    "expanded_url": f"https://example.com/{value[-10:]}",
                }
            )
    return text, entities


def _shift_entities(
    entities: dict[str, list[dict[str, Any]]], by: int
) -> dict[str, list[dict[str, Any]]]:
    return {
        kind: [{**item, "start": item["start"] + by, "end": item["end"] + by} for item in items]
        for kind, items in entities.items()
    }
