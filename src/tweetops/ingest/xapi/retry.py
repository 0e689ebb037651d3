"""One retry policy for every X API call.

One tenacity policy (:class:`RetryPolicy`, used by :func:`with_retries`) owns every retry. A 429
waits until `x-rate-limit-reset`; 5xx answers and dropped connections back off exponentially up
to a cap; the retry repeats the same request, so pagination continues from the same
`next_token`. 401/403 and other 4xx fail at once with one sentence.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
import tenacity
import tweepy
import urllib3

from tweetops.errors import TweetopsError
from tweetops.ingest.xapi.auth import auth_error
from tweetops.ingest.xapi.transport import NotJsonAnswer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How the X API sources retry: bounded attempts, capped exponential backoff, 429 waits.

    A 429 waits until its `x-rate-limit-reset` (plus `rate_limit_margin`, at most
    `rate_limit_cap`); without that header it backs off from `rate_limit_default`. Everything
    else transient waits `backoff_base * 2**(attempt - 1)`, at most `backoff_cap`.
    """

    attempts: int = 8
    backoff_base: float = 1.0
    backoff_cap: float = 64.0
    rate_limit_margin: float = 1.0
    rate_limit_cap: float = 15 * 60 + 5.0
    rate_limit_default: float = 60.0

    def wait(self, retry_state: tenacity.RetryCallState) -> float:
        """Seconds to wait before the next attempt (a tenacity `wait` callable)."""
        assert retry_state.outcome is not None
        exc = retry_state.outcome.exception()
        attempt = retry_state.attempt_number
        if isinstance(exc, tweepy.TooManyRequests):
            if exc.reset_time is not None:
                until_reset = max(float(exc.reset_time) - time.time(), 0.0)
                return min(until_reset + self.rate_limit_margin, self.rate_limit_cap)
            return min(self.rate_limit_default * 2.0 ** (attempt - 1), self.rate_limit_cap)
        return min(self.backoff_base * 2.0 ** (attempt - 1), self.backoff_cap)


# the policy of calls given none; read at call time, so a test may replace it
RETRY_POLICY = RetryPolicy()

# tweepy's Client raises the requests/urllib3 errors of a dropped connection unwrapped
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    tweepy.TooManyRequests,
    tweepy.TwitterServerError,
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.JSONDecodeError,  # a body cut short that still said 200
    urllib3.exceptions.ProtocolError,
)

F = TypeVar("F", bound=Callable[..., Any])


def with_retries(endpoint: str, policy: RetryPolicy | None = None) -> Callable[[F], F]:
    """Decorate an X API call with the retry policy and one-sentence errors.

    Transient failures are retried with the same arguments (so the same `next_token`); 401/403,
    other 4xx and exhausted retries raise :class:`TweetopsError` naming `endpoint`. The wrapper
    keeps the wrapped function's name, which `tweepy.Paginator` reads to pick `next_token`.
    """

    def decorate(call: F) -> F:
        @functools.wraps(call)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            chosen = policy or RETRY_POLICY
            retrying = tenacity.Retrying(
                stop=tenacity.stop_after_attempt(chosen.attempts),
                wait=chosen.wait,
                retry=tenacity.retry_if_exception_type(TRANSIENT_ERRORS),
                before_sleep=functools.partial(_log_retry, endpoint, chosen),
                reraise=True,
            )
            try:
                return retrying(call, *args, **kwargs)
            except (tweepy.Unauthorized, tweepy.Forbidden) as exc:
                raise auth_error(endpoint, _status_text(exc)) from exc
            except NotJsonAnswer as exc:
                raise TweetopsError(
                    f"The X API answered {endpoint} with a {exc.content_type} page instead of "
                    f"JSON (a proxy, captive portal or wrong ingest.api_base_url?); check "
                    f"ingest.api_base_url and the network, then run again."
                ) from None
            except TRANSIENT_ERRORS as exc:
                raise TweetopsError(
                    f"The X API kept failing for {endpoint} ({_status_text(exc)}) after "
                    f"{chosen.attempts} attempts; try again later, and the next run resumes "
                    f"from the checkpoint."
                ) from exc
            except tweepy.HTTPException as exc:
                raise TweetopsError(
                    f"The X API rejected {endpoint} ({_status_text(exc)}); check ingest.query, "
                    f"ingest.start_time, ingest.end_time and ingest.stream_rules."
                ) from exc

        return wrapper  # type: ignore[return-value]

    return decorate


def _status_text(exc: BaseException | None) -> str:
    if isinstance(exc, tweepy.HTTPException):
        response = exc.response
        text = f"{response.status_code} {response.reason}"
        message = exc.api_messages[0] if exc.api_messages else ""
        if message and message != response.reason:
            text += f": {message}"
        return text
    return f"connection failed: {type(exc).__name__}"


def _log_retry(endpoint: str, policy: RetryPolicy, retry_state: tenacity.RetryCallState) -> None:
    assert retry_state.outcome is not None and retry_state.next_action is not None
    log.warning(
        "X API %s failed (%s); retrying in %.2f s (attempt %d of %d)",
        endpoint,
        _status_text(retry_state.outcome.exception()),
        retry_state.next_action.sleep,
        retry_state.attempt_number + 1,
        policy.attempts,
    )
