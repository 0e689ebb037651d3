"""X API v2 sources through tweepy: recent search (`search`) and the filtered stream (`stream`).

Both produce the normalized record of :mod:`tweetops.ingest.record`: the tweet's own fields with
its author (from `includes.users`) embedded under `author`. A tweet whose author is missing from
the includes is passed on without one, so the snapshot writer quarantines it with its reason
instead of it vanishing.

Modules: :mod:`.auth` (the bearer token, kept out of logs), :mod:`.transport` (base URL and
timeouts), :mod:`.retry` (one retry policy), :mod:`.checkpoint` (resume state),
:mod:`.search` and :mod:`.stream` (the two sources), :mod:`.fields` (what both request).
"""

from tweetops.ingest.xapi.auth import TOKEN_ENV_VARS, RedactSecrets, bearer_token
from tweetops.ingest.xapi.checkpoint import SearchCheckpoint, StreamCheckpoint
from tweetops.ingest.xapi.fields import EXPANSIONS, TWEET_FIELDS, USER_FIELDS
from tweetops.ingest.xapi.retry import RetryPolicy, with_retries
from tweetops.ingest.xapi.search import search_source
from tweetops.ingest.xapi.stream import stream_source, sync_rules

__all__ = [
    "EXPANSIONS",
    "TOKEN_ENV_VARS",
    "TWEET_FIELDS",
    "USER_FIELDS",
    "RedactSecrets",
    "RetryPolicy",
    "SearchCheckpoint",
    "StreamCheckpoint",
    "bearer_token",
    "search_source",
    "stream_source",
    "sync_rules",
    "with_retries",
]
