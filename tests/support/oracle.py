"""An independent oracle for the feature tables: DuckDB SQL written from the documented semantics.

It shares no code with :mod:`tweetops.features` (only the column contracts of
:mod:`tweetops.schema`), so a slip in the Spark job, such as a leak of the tweet itself or of a
later tweet into the author history, shows up as a difference. The product never imports it
(duckdb is a dev dependency); the tests and `bench/features.py` do.

The semantics it computes, from the features package's docstrings and the README:

- a line is a tweet when its id is numeric, it has an author id, a readable `created_at` and
  the author's profile metrics; other lines are rejected and in no table;
- micro-batches are processed in order. The watermark a batch sees is the latest `created_at`
  accepted by the batches before it minus `features.watermark` (none before the first batch
  that accepted a tweet). A tweet before that watermark is late (in no table); a tweet whose
  id was already accepted within the watermark, or earlier in the same batch, is a duplicate;
  the other tweets are accepted into the history;
- users: one row per author over every accepted tweet, the profile of the latest tweet (by
  `created_at`, then tweet id);
- training rows: the accepted original tweets (not retweets) before the final watermark, with
  the author's history over accepted tweets in `[t - 24 h, t)`, `[t - 7 d, t)` and before `t`;
  with `flush_at_end`, every accepted original tweet; with `label_min_age`, not those fetched
  sooner than that after they were posted (a tweet with no fetch time is kept);
- activity: per author and event-time window (`start = k * slide`, `[start, start + window)`),
  the windows ending at or before the final watermark; with `flush_at_end`, every window.

Which micro-batch a file lands in is the stream's choice (part files in modification-time
order, `maxFilesPerTrigger` per batch), so the caller passes the batches; a one-shot run with
every file in one micro-batch is a single batch. Duplicates of one id are the same tweet
(identical lines), so which copy is kept does not matter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from tweetops.schema import (
    AUTHOR_HISTORY_COLUMNS,
    LABEL_AGE_COLUMN,
    LABEL_COLUMN,
    MODEL_INPUT_COLUMNS,
    PROFILE_COLUMNS,
    TRAINING_KEY_COLUMNS,
)
from tweetops.settings import DAY_MS, duration_ms

TABLES = ("users", "training", "activity")

_RAW_COLUMNS = """{
  'id': 'VARCHAR', 'created_at': 'VARCHAR', 'text': 'VARCHAR', 'lang': 'VARCHAR',
  'fetched_at': 'VARCHAR',
  'public_metrics': 'STRUCT(retweet_count BIGINT, reply_count BIGINT, like_count BIGINT,
                            quote_count BIGINT)',
  'entities': 'STRUCT(hashtags JSON[], mentions JSON[], urls JSON[])',
  'attachments': 'STRUCT(media_keys VARCHAR[])',
  'referenced_tweets': 'STRUCT(type VARCHAR, id VARCHAR)[]',
  'author': 'STRUCT(id VARCHAR, username VARCHAR, created_at VARCHAR, verified BOOLEAN,
                    public_metrics STRUCT(followers_count BIGINT, following_count BIGINT,
                    tweet_count BIGINT, listed_count BIGINT, like_count BIGINT))'
}"""

# the API's time format, `2026-10-01T18:03:12.000Z`, in UTC (the session's time zone is UTC)
_TIME = "try_strptime({0}, '%Y-%m-%dT%H:%M:%S.%gZ')"


def _refers(kind: str) -> str:
    return f"coalesce(len(list_filter(referenced_tweets, lambda r: r.type = '{kind}')) > 0, false)"


_TWEETS = f"""
SELECT id AS tweet_id, try_cast(id AS BIGINT) AS tweet_id_num, author.id AS user_id,
       author.username AS username,
       epoch_ms({_TIME.format("created_at")}) AS event_ms,
       {_TIME.format("author.created_at")} AS account_created_at,
       coalesce(lang, 'und') AS lang,
       coalesce(length(text), 0)::BIGINT AS text_length,
       coalesce(len(entities.hashtags), 0)::BIGINT AS hashtag_count,
       coalesce(len(entities.mentions), 0)::BIGINT AS mention_count,
       coalesce(len(entities.urls), 0)::BIGINT AS url_count,
       coalesce(len(attachments.media_keys), 0) > 0 AS has_media,
       {_refers("retweeted")} AS is_retweet,
       {_refers("replied_to")} AS is_reply,
       {_refers("quoted")} AS is_quote,
       (coalesce(public_metrics.retweet_count, 0) + coalesce(public_metrics.reply_count, 0)
        + coalesce(public_metrics.like_count, 0) + coalesce(public_metrics.quote_count, 0)
       )::BIGINT AS engagement_total,
       author.public_metrics.followers_count AS followers_count,
       author.public_metrics.following_count AS following_count,
       author.public_metrics.tweet_count AS tweet_count,
       coalesce(author.public_metrics.like_count, 0) AS like_count,
       author.public_metrics.listed_count AS listed_count,
       coalesce(author.verified, false) AS verified,
       epoch_ms({_TIME.format("fetched_at")}) AS fetched_ms
FROM read_json({{files}}, format = 'newline_delimited', columns = {_RAW_COLUMNS},
               ignore_errors = true)
"""

_VALID = """
tweet_id_num IS NOT NULL AND user_id IS NOT NULL AND event_ms IS NOT NULL
AND followers_count IS NOT NULL AND following_count IS NOT NULL AND tweet_count IS NOT NULL
AND listed_count IS NOT NULL AND text_length <= 25000
"""


@dataclass(frozen=True)
class OracleCounts:
    """What the oracle's batches did with the tweets."""

    accepted: int
    late: int
    duplicates: int
    waiting: int
    too_young: int
    closed_ms: int | None


def build_oracle(
    con: duckdb.DuckDBPyConnection,
    batches: Sequence[Sequence[Path]],
    *,
    watermark: str = "1 hour",
    activity_window: str = "1 hour",
    activity_slide: str | None = None,
    flush_at_end: bool = False,
    label_min_age: str | None = None,
) -> OracleCounts:
    """Create the tables `users`, `training` and `activity` in `con` from the raw part files.

    `batches` are the micro-batches in order, each a non-empty list of JSONL part files.
    `waiting` counts the accepted original tweets that are not training rows (at or after the
    final watermark); with `flush_at_end` they are training rows and none wait. An original
    tweet fetched less than `label_min_age` after it was posted is no training row
    (`too_young` counts those past the watermark); one with no fetch time is.
    """
    if not batches:
        raise ValueError("the oracle needs at least one micro-batch")
    con.execute("SET TimeZone = 'UTC'")
    delay = duration_ms(watermark)
    late = duplicates = 0
    max_ms: int | None = None
    for index, files in enumerate(batches):
        listed = "[" + ", ".join(f"'{path}'" for path in files) + "]"
        tweets = _TWEETS.replace("{files}", listed)
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE batch AS SELECT * FROM ({tweets}) WHERE {_VALID}"
        )
        if index == 0:
            con.execute("CREATE OR REPLACE TEMP TABLE history AS SELECT * FROM batch WHERE false")
        watermark_ms = None if max_ms is None else max_ms - delay
        is_late = "false" if watermark_ms is None else f"event_ms < {watermark_ms}"
        recent = "false" if watermark_ms is None else f"event_ms >= {watermark_ms - delay}"
        before = _scalar(con, "SELECT count(*) FROM history")
        con.execute(
            f"INSERT INTO history SELECT DISTINCT ON (tweet_id) * FROM batch "
            f"WHERE NOT ({is_late}) "
            f"AND tweet_id NOT IN (SELECT tweet_id FROM history WHERE {recent})"
        )
        accepted_now = _scalar(con, "SELECT count(*) FROM history") - before
        in_batch = _scalar(con, "SELECT count(*) FROM batch")
        late_now = _scalar(con, f"SELECT count(*) FROM batch WHERE {is_late}")
        late += late_now
        duplicates += in_batch - late_now - accepted_now
        max_ms = con.execute("SELECT max(event_ms) FROM history").fetchone()[0]  # type: ignore[index]
    closed_ms = None if max_ms is None else max_ms - delay
    if flush_at_end:
        closed_tweet, closed_window = "true", "true"
    elif closed_ms is None:
        closed_tweet, closed_window = "false", "false"
    else:
        closed_tweet, closed_window = f"event_ms < {closed_ms}", f"end_ms <= {closed_ms}"
    _users(con)
    young = (
        "false"
        if label_min_age is None
        else f"coalesce(fetched_ms - event_ms < {duration_ms(label_min_age)}, false)"
    )
    _training(con, f"({closed_tweet}) AND NOT ({young})")
    window_ms = duration_ms(activity_window)
    _activity(con, window_ms, duration_ms(activity_slide or activity_window), closed_window)
    return OracleCounts(
        accepted=_scalar(con, "SELECT count(*) FROM history"),
        late=late,
        duplicates=duplicates,
        waiting=_scalar(
            con, f"SELECT count(*) FROM history WHERE NOT is_retweet AND NOT ({closed_tweet})"
        ),
        too_young=_scalar(
            con,
            f"SELECT count(*) FROM history WHERE NOT is_retweet AND {closed_tweet} AND {young}",
        ),
        closed_ms=closed_ms,
    )


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


_LATEST = "(event_ms, tweet_id_num)"
_TIMESTAMP = "make_timestamp(({0}) * 1000)"


def _users(con: duckdb.DuckDBPyConnection) -> None:
    profile = ", ".join(f"arg_max({name}, {_LATEST}) AS {name}" for name in PROFILE_COLUMNS)
    con.execute(
        f"""
        CREATE OR REPLACE TABLE users AS
        SELECT user_id, arg_max(username, {_LATEST}) AS username,
               count(*) AS tweets_seen,
               count(*) FILTER (WHERE NOT is_retweet) AS original_tweets,
               count(*) FILTER (WHERE is_retweet) AS retweets_made,
               {profile},
               arg_max(verified, {_LATEST}) AS verified,
               arg_max(account_created_at, {_LATEST}) AS account_created_at,
               {_TIMESTAMP.format("min(event_ms)")} AS first_tweet_at,
               {_TIMESTAMP.format("max(event_ms)")} AS last_tweet_at,
               coalesce(sum(engagement_total) FILTER (WHERE NOT is_retweet), 0)::BIGINT
                 AS total_engagement,
               avg(ln(1 + engagement_total)) FILTER (WHERE NOT is_retweet) AS mean_engagement
        FROM history GROUP BY user_id
        """
    )


def _training(con: duckdb.DuckDBPyConnection, closed: str) -> None:
    before = "PARTITION BY user_id ORDER BY event_ms RANGE BETWEEN {} PRECEDING AND 1 PRECEDING"
    everything = before.format("UNBOUNDED")
    log_engagement = "CASE WHEN NOT is_retweet THEN ln(1 + engagement_total) END"
    history = f"""
        SELECT *,
          count(*) OVER ({before.format(DAY_MS)}) AS author_tweets_24h,
          count(*) OVER ({before.format(7 * DAY_MS)}) AS author_tweets_7d,
          count({log_engagement}) OVER ({everything}) AS previous_originals,
          avg({log_engagement}) OVER ({everything}) AS previous_mean,
          max(event_ms) OVER ({everything}) AS previous_ms
        FROM history
    """
    derived = {
        "tweet_id": "tweet_id",
        "user_id": "user_id",
        "created_at": _TIMESTAMP.format("event_ms"),
        LABEL_COLUMN: "ln(1 + engagement_total)",
        LABEL_AGE_COLUMN: "(fetched_ms - event_ms) / 3600000.0",
        "hour_of_day": "hour(make_timestamp(event_ms * 1000))::BIGINT",
        "account_age_days": (
            "coalesce(date_diff('day', CAST(account_created_at AS DATE), "
            "CAST(make_timestamp(event_ms * 1000) AS DATE)), 0)::BIGINT"
        ),
        "author_has_history": "previous_originals > 0",
        "author_mean_engagement": "coalesce(previous_mean, 0.0)",
        "days_since_author_previous_tweet": (
            f"coalesce((event_ms - previous_ms) / {float(DAY_MS)}, -1.0)"
        ),
    }
    columns = (*TRAINING_KEY_COLUMNS, LABEL_COLUMN, LABEL_AGE_COLUMN, *MODEL_INPUT_COLUMNS)
    assert set(AUTHOR_HISTORY_COLUMNS) <= set(columns)
    select = ", ".join(f"{derived.get(name, name)} AS {name}" for name in columns)
    con.execute(
        f"CREATE OR REPLACE TABLE training AS SELECT {select} FROM ({history}) "
        f"WHERE NOT is_retweet AND {closed}"
    )


def _activity(con: duckdb.DuckDBPyConnection, window_ms: int, slide_ms: int, closed: str) -> None:
    # every window [k * slide, k * slide + window) that holds the tweet
    windows = f"""
        SELECT *, start_ms + {window_ms} AS end_ms
        FROM (SELECT *, unnest(range(
                  (event_ms // {slide_ms} - ({window_ms} - 1) // {slide_ms}) * {slide_ms},
                  event_ms + 1, {slide_ms})) AS start_ms
              FROM history)
        WHERE start_ms + {window_ms} > event_ms
    """
    first = "(event_ms, tweet_id_num)"
    con.execute(
        f"""
        CREATE OR REPLACE TABLE activity AS
        SELECT user_id, {_TIMESTAMP.format("start_ms")} AS window_start,
               {_TIMESTAMP.format("end_ms")} AS window_end,
               count(*) AS tweets,
               count(*) FILTER (WHERE NOT is_retweet) AS original_tweets,
               count(*) FILTER (WHERE is_retweet) AS retweets,
               coalesce(sum(engagement_total) FILTER (WHERE NOT is_retweet), 0)::BIGINT
                 AS total_engagement,
               avg(ln(1 + engagement_total)) FILTER (WHERE NOT is_retweet) AS mean_engagement,
               arg_min(followers_count, {first}) AS followers_start,
               arg_max(followers_count, {first}) AS followers_end,
               arg_max(followers_count, {first}) - arg_min(followers_count, {first})
                 AS follower_growth
        FROM ({windows}) GROUP BY user_id, start_ms, end_ms HAVING {closed}
        """
    )


def canonical(con: duckdb.DuckDBPyConnection, source: str) -> str:
    """SQL for `source` (a table or a parenthesised query) in a comparable form.

    Columns in name order, timestamps as epoch milliseconds, doubles rounded to 1e-9 (sums
    merge in another order in each engine), integers as BIGINT, no `batch_id`.
    """
    described = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
    selected = []
    for name, dtype, *_ in sorted(described):
        if name == "batch_id":
            continue
        if dtype.startswith("TIMESTAMP"):
            selected.append(f"epoch_ms({name}) AS {name}")
        elif dtype in ("DOUBLE", "FLOAT"):
            selected.append(f"round({name}, 9) AS {name}")
        elif dtype in ("INTEGER", "BIGINT", "SMALLINT", "HUGEINT"):
            selected.append(f"{name}::BIGINT AS {name}")
        else:
            selected.append(name)
    return f"SELECT {', '.join(selected)} FROM {source}"


@dataclass(frozen=True)
class Difference:
    """How a table differs from the oracle's: rows only in one of them (as multisets)."""

    table: str
    columns_only_oracle: tuple[str, ...]
    columns_only_other: tuple[str, ...]
    rows_only_oracle: int
    rows_only_other: int

    @property
    def equal(self) -> bool:
        """Same columns and the same rows."""
        return not (
            self.columns_only_oracle
            or self.columns_only_other
            or self.rows_only_oracle
            or self.rows_only_other
        )


def compare_with_parquet(con: duckdb.DuckDBPyConnection, table: str, folder: Path) -> Difference:
    """Compare the oracle's `table` with the Parquet table in `folder` (Spark's output)."""
    if not any(folder.rglob("*.parquet")):
        return Difference(table, (), (), _scalar(con, f"SELECT count(*) FROM {table}"), 0)
    files = f"read_parquet('{folder}/**/*.parquet', hive_partitioning = false)"
    ours, theirs = canonical(con, table), canonical(con, files)
    oracle_columns = {row[0] for row in con.execute(f"DESCRIBE {ours}").fetchall()}
    other_columns = {row[0] for row in con.execute(f"DESCRIBE {theirs}").fetchall()}
    if oracle_columns != other_columns:
        return Difference(
            table,
            tuple(sorted(oracle_columns - other_columns)),
            tuple(sorted(other_columns - oracle_columns)),
            0,
            0,
        )
    only_oracle = _scalar(con, f"SELECT count(*) FROM ({ours} EXCEPT ALL {theirs})")
    only_other = _scalar(con, f"SELECT count(*) FROM ({theirs} EXCEPT ALL {ours})")
    return Difference(table, (), (), only_oracle, only_other)
