"""The app bearer token, and keeping it out of logs.

The token comes from `X_BEARER_TOKEN` (or `TWITTER_BEARER_TOKEN`) and only ever lives in
memory. It is never logged (tweepy's DEBUG request log carries the Authorization header, so a
filter redacts it), and never written into params, tags, manifests, details or checkpoints.
"""

from __future__ import annotations

import logging
import os
import re

from tweetops.errors import TweetopsError

TOKEN_ENV_VARS = ("X_BEARER_TOKEN", "TWITTER_BEARER_TOKEN")

_SECRETS: set[str] = set()
_BEARER = re.compile(r"(Bearer\s+)[^\s'\",}]+")
_REDACTED = "<redacted>"
_LOGGERS_TO_REDACT = (
    "tweepy",
    "tweepy.client",
    "tweepy.streaming",
    "urllib3",
    "urllib3.connectionpool",
    "urllib3.connection",
    "requests",
)


class RedactSecrets(logging.Filter):
    """Replace bearer tokens in a log record's message before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact in place and keep the record."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        cleaned = _BEARER.sub(rf"\1{_REDACTED}", message)
        for secret in _SECRETS:
            cleaned = cleaned.replace(secret, _REDACTED)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def _install_redaction() -> None:
    # a logger's own filters run for every record it creates, whichever handler (root,
    # pytest's caplog, a file) ends up emitting it; installing twice adds no second filter
    for name in _LOGGERS_TO_REDACT:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())


def bearer_token() -> str:
    """The app bearer token from `X_BEARER_TOKEN`, else `TWITTER_BEARER_TOKEN`.

    Reading it installs the :class:`RedactSecrets` filter on tweepy's, urllib3's and requests'
    loggers (once), before anything can log a request that carries it.
    """
    for name in TOKEN_ENV_VARS:
        value = os.environ.get(name, "").strip()
        if value:
            _SECRETS.add(value)
            _install_redaction()
            return value
    raise TweetopsError(
        "No X API bearer token is set; export X_BEARER_TOKEN (or "
        "TWITTER_BEARER_TOKEN) with your app's bearer token to ingest from the "
        "X API."
    )


def auth_error(endpoint: str, status: str) -> TweetopsError:
    """The one sentence for a refused bearer token."""
    return TweetopsError(
        f"The X API refused the bearer token for {endpoint} ({status}); set "
        f"X_BEARER_TOKEN (or TWITTER_BEARER_TOKEN) to a valid app bearer token "
        f"with access to this endpoint."
    )
