"""X API v2 sources through tweepy: recent search (`search`) and the filtered stream (`stream`).

Both produce the normalized record of :mod:`tweetops.ingest.record`: the tweet's own fields with
its author (from `includes.users`) embedded under `author`. A tweet whose author is missing from
the includes is passed on without one, so the snapshot writer quarantines it with its reason
instead of it vanishing.

Credentials: the app bearer token comes from `X_BEARER_TOKEN` (or `TWITTER_BEARER_TOKEN`) and
only ever lives in memory. It is never logged (tweepy's DEBUG request log carries the
Authorization header, so a filter redacts it), and never written into params, tags, manifests,
details or checkpoints.

`ingest.api_base_url` lets a proxy or a test server stand in for https://api.twitter.com: a
`requests` transport adapter mounted on the tweepy client's session rewrites the URL prefix.
tweepy itself is not patched.

Faults (search): one tenacity policy (:class:`RetryPolicy`, used by :func:`with_retries`) owns
every retry. A 429 waits until `x-rate-limit-reset`; 5xx answers and dropped connections back
off exponentially up to a cap; the retry repeats the same request, so pagination continues from
the same `next_token`. 401/403 and other 4xx fail at once with one sentence.

Resume: each source keeps a checkpoint (`search.json`, `stream.json`) in
`ingest.checkpoint_dir`, advanced only once a part file is sealed, i.e. once its tweets are
durable. A run that was stopped continues from it; a finished search followed by a new one in
mode `append` collects only newer tweets (`since_id`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any, TypeVar

import orjson
import requests
import tenacity
import tweepy
import urllib3
from requests.adapters import HTTPAdapter

from tweetops.errors import TweetopsError
from tweetops.ingest import SourceBatch
from tweetops.ingest.record import users_by_id, with_author
from tweetops.ingest.snapshot import Rejected
from tweetops.settings import IngestSettings

log = logging.getLogger(__name__)

DEFAULT_API_BASE_URL = "https://api.twitter.com"
TOKEN_ENV_VARS = ("X_BEARER_TOKEN", "TWITTER_BEARER_TOKEN")
EXPANSIONS = ["author_id"]
TWEET_FIELDS = ["id", "created_at", "text", "lang", "author_id", "public_metrics", "entities",
                "referenced_tweets", "attachments"]
USER_FIELDS = ["id", "username", "created_at", "verified", "public_metrics"]
SEARCH_ENDPOINT = "GET /2/tweets/search/recent"
STREAM_ENDPOINT = "GET /2/tweets/search/stream"
RULES_GET_ENDPOINT = "GET /2/tweets/search/stream/rules"
RULES_POST_ENDPOINT = "POST /2/tweets/search/stream/rules"
PAGE_MIN, PAGE_MAX = 10, 100  # what recent search accepts as max_results
RULE_TAG = "tweetops"
# requests sent by tweepy's Client carry no timeout; a silently dead connection must still fail
REQUEST_TIMEOUT = (10.0, 60.0)
# tweepy's reconnect waits (BaseStream._connect), mirrored to know whether a wait would end
# after max_seconds: network errors 0 s, +0.25 s up to 16 s; HTTP errors 5 s doubling up to
# 320 s, at least 60 s after a 429
STREAM_NETWORK_WAIT_STEP, STREAM_NETWORK_WAIT_MAX = 0.25, 16.0
STREAM_HTTP_WAIT_START, STREAM_HTTP_WAIT_MAX, STREAM_429_WAIT_START = 5.0, 320.0, 60.0
STREAM_STOP_GRACE_SECONDS = 5.0


# --- the bearer token, and keeping it out of logs ------------------------------------------

_SECRETS: set[str] = set()
_BEARER = re.compile(r"(Bearer\s+)[^\s'\",}]+")
_REDACTED = "<redacted>"
_LOGGERS_TO_REDACT = ("tweepy", "tweepy.client", "tweepy.streaming", "urllib3",
                      "urllib3.connectionpool", "urllib3.connection", "requests")


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
    # pytest's caplog, a file) ends up emitting it
    for name in _LOGGERS_TO_REDACT:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())


_install_redaction()


def bearer_token() -> str:
    """The app bearer token from `X_BEARER_TOKEN`, else `TWITTER_BEARER_TOKEN`."""
    for name in TOKEN_ENV_VARS:
        value = os.environ.get(name, "").strip()
        if value:
            _SECRETS.add(value)
            return value
    raise TweetopsError("No X API bearer token is set; export X_BEARER_TOKEN (or "
                        "TWITTER_BEARER_TOKEN) with your app's bearer token to ingest from the "
                        "X API.")


# --- pointing tweepy at another base URL ---------------------------------------------------

class ApiAdapter(HTTPAdapter):
    """Transport adapter that sends `https://api.twitter.com/...` requests to `base_url`.

    It also gives requests without a timeout (tweepy's Client sets none) `REQUEST_TIMEOUT`.
    """

    def __init__(self, base_url: str | None = None,
                 timeout: tuple[float, float] | None = REQUEST_TIMEOUT) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/") if base_url else None
        self.timeout = timeout

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """Rewrite the URL prefix, then send as usual."""
        url = request.url or ""
        if self.base_url and url.startswith(DEFAULT_API_BASE_URL):
            request.url = self.base_url + url[len(DEFAULT_API_BASE_URL):]
            if requests.utils.should_bypass_proxies(request.url, no_proxy=None):
                kwargs["proxies"] = {}
        if kwargs.get("timeout") is None and self.timeout is not None:
            kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


def _rewrites_base(base_url: str) -> str | None:
    base = base_url.strip().rstrip("/")
    return None if base in ("", DEFAULT_API_BASE_URL) else base


# --- one retry policy ----------------------------------------------------------------------

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
                until_reset = max(exc.reset_time - time.time(), 0.0)
                return min(until_reset + self.rate_limit_margin, self.rate_limit_cap)
            return min(self.rate_limit_default * 2 ** (attempt - 1), self.rate_limit_cap)
        return min(self.backoff_base * 2 ** (attempt - 1), self.backoff_cap)


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
            except TRANSIENT_ERRORS as exc:
                raise TweetopsError(
                    f"The X API kept failing for {endpoint} ({_status_text(exc)}) after "
                    f"{chosen.attempts} attempts; try again later, and the next run resumes "
                    f"from the checkpoint.") from exc
            except tweepy.HTTPException as exc:
                raise TweetopsError(
                    f"The X API rejected {endpoint} ({_status_text(exc)}); check ingest.query, "
                    f"ingest.start_time, ingest.end_time and ingest.stream_rules.") from exc

        return wrapper  # type: ignore[return-value]

    return decorate


def auth_error(endpoint: str, status: str) -> TweetopsError:
    """The one sentence for a refused bearer token."""
    return TweetopsError(f"The X API refused the bearer token for {endpoint} ({status}); set "
                         f"X_BEARER_TOKEN (or TWITTER_BEARER_TOKEN) to a valid app bearer token "
                         f"with access to this endpoint.")


def _status_text(exc: BaseException) -> str:
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
    log.warning("X API %s failed (%s); retrying in %.2f s (attempt %d of %d)", endpoint,
                _status_text(retry_state.outcome.exception()), retry_state.next_action.sleep,
                retry_state.attempt_number + 1, policy.attempts)


# --- checkpoints ---------------------------------------------------------------------------

@dataclass
class SearchCheckpoint:
    """Where a search collection stands; only advanced once tweets are in sealed part files.

    `next_token` is the token of the page holding the first tweet not yet durable (None: the
    first page); `page_done_ids` are the tweets of that page that already are, skipped when it
    is fetched again. `exhausted` says the last page was consumed.
    """

    query: str
    start_time: str | None
    end_time: str | None
    since_id: str | None = None
    next_token: str | None = None
    page_done_ids: list[str] = field(default_factory=list)
    pages_done: int = 0
    collected: int = 0
    newest_id: str | None = None
    exhausted: bool = False
    complete: bool = False
    batch_seq: int = 0

    def same_window(self, other: SearchCheckpoint) -> bool:
        """True when both describe the same query and time window."""
        return (self.query, self.start_time, self.end_time) == \
            (other.query, other.start_time, other.end_time)


@dataclass
class StreamCheckpoint:
    """How far a stream collection got: tweets collected (durably) and the newest id.

    The filtered stream has no `since_id` (only `backfill_minutes`, on some access levels), so
    a resumed stream simply continues with what arrives now; repeats are dropped by the
    snapshot's deduplication.
    """

    rules: list[str]
    collected: int = 0
    newest_id: str | None = None
    complete: bool = False
    batch_seq: int = 0


C = TypeVar("C", SearchCheckpoint, StreamCheckpoint)


def load_checkpoint(path: Path, kind: type[C]) -> C | None:
    """The checkpoint stored at `path`, or None when there is none."""
    if not path.is_file():
        return None
    try:
        data = orjson.loads(path.read_bytes())
        known = {f.name for f in fields(kind)}
        return kind(**{k: v for k, v in data.items() if k in known})
    except (orjson.JSONDecodeError, TypeError, AttributeError) as exc:
        raise TweetopsError(f"The ingest checkpoint {path} is unreadable ({exc}); delete it to "
                            f"start a fresh collection.") from exc


def save_checkpoint(path: Path, checkpoint: SearchCheckpoint | StreamCheckpoint) -> None:
    """Write `checkpoint` atomically (temporary file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as handle:
        handle.write(orjson.dumps(asdict(checkpoint), option=orjson.OPT_INDENT_2) + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _batch_id(source: str, seq: int) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{source}-{stamp}-{seq:04d}"


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _max_id(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a or b
    return a if int(a) >= int(b) else b


# --- what search and stream share: a checkpoint advanced as part files are sealed -----------

class _Collection:
    """One run of a source: the tweets handed out so far, and the checkpoint behind them."""

    source = ""

    def __init__(self, checkpoint_path: Path, state: SearchCheckpoint | StreamCheckpoint,
                 details: dict[str, Any]) -> None:
        self.path = checkpoint_path
        self.state = state
        self.collected_before = state.collected
        self.details = {**details, "collected_before": state.collected, "resumed": False,
                        "resumed_from": None}
        self._seen: set[str] = set()
        self._newest: str | None = None

    def candidates(self) -> Iterator[tuple[Any, str]]:
        """`(candidate, location)` pairs for the snapshot writer."""
        raise NotImplementedError

    def batch(self, resumed_from: str | None) -> SourceBatch:
        """The SourceBatch of this run; `resumed_from` says where a stopped run continues."""
        if resumed_from is not None:
            self.details["resumed"], self.details["resumed_from"] = True, resumed_from
        return SourceBatch(batch_id=_batch_id(self.source, self.state.batch_seq),
                           candidates=self.candidates(), details=self.details,
                           on_part_sealed=self.on_part_sealed, on_complete=self.on_complete,
                           resuming=resumed_from is not None)

    def _remember(self, tweet_id: str) -> None:
        self._seen.add(tweet_id)
        if tweet_id.isdigit():
            self._newest = _max_id(self._newest, tweet_id)

    def on_part_sealed(self, _path: Path) -> None:
        """Every candidate handed out so far is durable: move the checkpoint past it."""
        self._advance()
        save_checkpoint(self.path, self.state)

    def on_complete(self) -> None:
        """Every candidate was written: the collection is complete."""
        self._advance()
        self.state.complete = True
        save_checkpoint(self.path, self.state)

    def _advance(self) -> None:
        self.state.collected = self.collected_before + len(self._seen)
        self.state.newest_id = _max_id(self.state.newest_id, self._newest)


def _mount_api_adapter(session: requests.Session, api_base_url: str,
                       timeout: tuple[float, float] | None = REQUEST_TIMEOUT) -> None:
    session.mount(DEFAULT_API_BASE_URL, ApiAdapter(_rewrites_base(api_base_url), timeout))


# --- search --------------------------------------------------------------------------------

@dataclass
class _Cursor:
    """Position of the last candidate handed out, to turn into a checkpoint at a seal."""

    page_number: int
    request_token: str | None
    next_token: str | None
    done_ids: list[str]
    rest_of_page_done: bool


class SearchCollection(_Collection):
    """One run of recent search: its candidates, and the checkpoint behind them."""

    source = "search"
    state: SearchCheckpoint

    def __init__(self, settings: IngestSettings, client: tweepy.Client,
                 checkpoint_path: Path, state: SearchCheckpoint,
                 policy: RetryPolicy | None) -> None:
        super().__init__(checkpoint_path, state, {
            "query": state.query, "start_time": state.start_time, "end_time": state.end_time,
            "since_id": state.since_id, "max_tweets": settings.max_tweets, "pages": 0})
        self.settings = settings
        self.client = client
        self.policy = policy
        self._cursor: _Cursor | None = None

    def candidates(self) -> Iterator[tuple[Any, str]]:
        """Yield `(record, "search:page=<n>:index=<i>")` until max_tweets or the last page."""
        state = self.state
        budget = self.settings.max_tweets - state.collected
        if state.exhausted or budget <= 0:
            return
        search = with_retries(SEARCH_ENDPOINT, self.policy)(self.client.search_recent_tweets)
        pages = tweepy.Paginator(
            search, state.query, pagination_token=state.next_token,
            max_results=min(max(budget, PAGE_MIN), PAGE_MAX), expansions=EXPANSIONS,
            tweet_fields=TWEET_FIELDS, user_fields=USER_FIELDS, since_id=state.since_id,
            start_time=self.settings.start_time, end_time=self.settings.end_time)
        request_token, page_number = state.next_token, state.pages_done
        skip = set(state.page_done_ids)
        for page in pages:
            page_number += 1
            self.details["pages"] += 1
            next_token = (page.get("meta") or {}).get("next_token")
            tweets = [t for t in page.get("data") or [] if isinstance(t, dict)]
            users = users_by_id(page.get("includes"))
            done = [str(t.get("id")) for t in tweets if str(t.get("id")) in skip]
            for index, tweet in enumerate(tweets):
                tweet_id = str(tweet.get("id"))
                if tweet_id in skip:
                    continue
                if len(self._seen) >= budget:
                    return
                done.append(tweet_id)
                rest_done = all(str(t.get("id")) in skip for t in tweets[index + 1:])
                self._cursor = _Cursor(page_number, request_token, next_token, list(done),
                                       rest_done)
                self._remember(tweet_id)
                yield with_author(tweet, users), f"search:page={page_number}:index={index}"
            skip = set()
            request_token = next_token
            if len(self._seen) >= budget:
                return  # before the paginator asks for a page nobody needs

    def _advance(self) -> None:
        cursor, state = self._cursor, self.state
        if cursor is not None:
            if cursor.rest_of_page_done:
                state.next_token, state.page_done_ids = cursor.next_token, []
                state.pages_done = cursor.page_number
                state.exhausted = cursor.next_token is None
            else:
                state.next_token, state.page_done_ids = cursor.request_token, cursor.done_ids
                state.pages_done = cursor.page_number - 1
        super()._advance()


def search_source(settings: IngestSettings, policy: RetryPolicy | None = None) -> SourceBatch:
    """X API v2 recent search: pages of tweets joined with their authors, resumable.

    A stopped collection of the same query and time window resumes from its checkpoint
    (`resuming=True`, `max_tweets` counting what it already collected; every tweet received
    counts, quarantined ones included). After a complete one, mode `append` collects only
    tweets newer than its newest (`since_id`); mode `replace` starts over, as the snapshot is
    replaced anyway.
    """
    client = tweepy.Client(bearer_token=bearer_token(), return_type=dict,
                           wait_on_rate_limit=False)
    _mount_api_adapter(client.session, settings.api_base_url)
    path = settings.checkpoint_dir / "search.json"
    fresh = SearchCheckpoint(query=settings.query, start_time=_iso(settings.start_time),
                             end_time=_iso(settings.end_time))
    previous = load_checkpoint(path, SearchCheckpoint)
    state, resuming = fresh, False
    if previous is not None and previous.same_window(fresh):
        if not previous.complete:
            state, resuming = previous, True
            log.info("Resuming the search collection from its checkpoint (%d tweets "
                     "collected).", state.collected)
        elif settings.mode == "append":
            state.since_id = state.newest_id = previous.newest_id
    state.batch_seq = (previous.batch_seq if previous else 0) + 1
    save_checkpoint(path, state)
    collection = SearchCollection(settings, client, path, state, policy)
    return collection.batch((state.next_token or "first page") if resuming else None)


# --- filtered stream -----------------------------------------------------------------------

_END = object()


class QueueStream(tweepy.StreamingClient):
    """A filtered stream whose thread puts `(payload, location)` pairs on a queue.

    It ends itself (and says why on the queue) on 401/403 and other client errors, and when
    tweepy's next reconnect wait would run past `deadline` (monotonic seconds): tweepy's own
    reconnect backoff is kept, but never outlives the collection.
    """

    def __init__(self, bearer: str, sink: queue.Queue[Any], api_base_url: str) -> None:
        super().__init__(bearer, return_type=dict, wait_on_rate_limit=False, daemon=True)
        # tweepy passes its own 21 s read timeout on the stream (keep-alives come every 20 s)
        _mount_api_adapter(self.session, api_base_url, timeout=None)
        self.session.hooks["response"].append(self._remember_response)
        self.sink = sink
        self.deadline = float("inf")
        self.connections = 0
        self._lines = 0
        self._stopping = False
        self._http_wait = STREAM_HTTP_WAIT_START
        self._network_wait = 0.0
        self._response: requests.Response | None = None

    def _remember_response(self, response: requests.Response, *args: Any,
                           **kwargs: Any) -> None:
        self._response = response

    def on_connect(self) -> None:
        """Count the connection and reset the mirrored backoff, as tweepy does."""
        self.connections += 1
        self._lines = 0
        self._http_wait, self._network_wait = STREAM_HTTP_WAIT_START, 0.0
        log.info("X API filtered stream connected (connection %d).", self.connections)

    def on_data(self, raw_data: bytes) -> None:
        """Queue one stream line: parsed when it is JSON, raw otherwise (to be quarantined)."""
        self._lines += 1
        location = f"stream:connection={self.connections}:line={self._lines}"
        try:
            payload = orjson.loads(raw_data)
        except orjson.JSONDecodeError as exc:
            self.sink.put((Rejected(raw_data, f"stream line is not valid JSON ({exc})"),
                           location))
            return
        if isinstance(payload, dict) and "data" not in payload and "errors" in payload:
            log.warning("X API stream message without a tweet: %s", payload["errors"])
            return
        self.sink.put((payload, location))
        self._stop_after_deadline()

    def on_keep_alive(self) -> None:
        """Keep-alives are when a quiet stream notices the deadline."""
        self._stop_after_deadline()

    def on_request_error(self, status_code: int) -> None:
        """Fail at once on client errors; otherwise let tweepy wait if that ends in time."""
        if self._stopping:
            return
        phrase = _phrase(status_code)
        if status_code in (401, 403):
            self._fail(auth_error(STREAM_ENDPOINT, f"{status_code} {phrase}"))
            return
        if 400 <= status_code < 500 and status_code not in (420, 429):
            self._fail(TweetopsError(
                f"The X API rejected {STREAM_ENDPOINT} ({status_code} {phrase}); check "
                f"ingest.stream_rules and the app's access to the filtered stream."))
            return
        wait = self._http_wait
        if status_code in (420, 429):
            wait = max(wait, STREAM_429_WAIT_START)
        self._http_wait = min(wait * 2, STREAM_HTTP_WAIT_MAX)
        self._give_up_if_past_deadline(wait, f"HTTP {status_code} {phrase}")

    def on_connection_error(self) -> None:
        """A dropped connection: tweepy reconnects after its network backoff."""
        if self._stopping:
            return
        wait = self._network_wait
        self._network_wait = min(wait + STREAM_NETWORK_WAIT_STEP, STREAM_NETWORK_WAIT_MAX)
        self._give_up_if_past_deadline(wait, "connection error")

    def on_closed(self, response: requests.Response) -> None:
        """The server ended the stream; tweepy reconnects."""
        if not self._stopping:
            log.warning("X API closed the filtered stream; reconnecting.")

    def on_exception(self, exception: Exception) -> None:
        """An unexpected error ended the stream thread: hand it to the collecting side."""
        self.sink.put(TweetopsError(
            f"The X API filtered stream stopped on an unexpected {type(exception).__name__} "
            f"({exception}); run the ingest again to resume from the checkpoint."))

    def on_disconnect(self) -> None:
        """The stream thread is done."""
        self.sink.put(_END)

    def stop(self) -> None:
        """Disconnect now: also wake a read blocked on a quiet connection."""
        self._stopping = True
        self.disconnect()
        response = self._response
        if response is not None:
            # already closed or released to the pool: then there is no read left to wake
            with contextlib.suppress(AttributeError, ValueError, RuntimeError, OSError):
                response.raw.shutdown()

    def _fail(self, error: TweetopsError) -> None:
        self.sink.put(error)
        self._stopping = True
        self.disconnect()

    def _stop_after_deadline(self) -> None:
        if time.monotonic() >= self.deadline:
            self._stopping = True
            self.disconnect()

    def _give_up_if_past_deadline(self, wait: float, why: str) -> None:
        if time.monotonic() + wait >= self.deadline:
            log.warning("X API stream %s; the reconnect wait of %.2f s would pass "
                        "ingest.max_seconds, so the collection stops here.", why, wait)
            self._stopping = True
            self.disconnect()


def _phrase(status_code: int) -> str:
    try:
        return HTTPStatus(status_code).phrase
    except ValueError:
        return "HTTP error"


class StreamCollection(_Collection):
    """One run of the filtered stream: its candidates, and the checkpoint behind them."""

    source = "stream"
    state: StreamCheckpoint

    def __init__(self, settings: IngestSettings, bearer: str, checkpoint_path: Path,
                 state: StreamCheckpoint) -> None:
        super().__init__(checkpoint_path, state, {
            "rules": list(state.rules), "max_tweets": settings.max_tweets,
            "max_seconds": settings.max_seconds, "connections": 0})
        self.settings = settings
        self.bearer = bearer

    def candidates(self) -> Iterator[tuple[Any, str]]:
        """Yield stream tweets until max_tweets or max_seconds; the stream thread ends with it."""
        budget = self.settings.max_tweets - self.state.collected
        if budget <= 0:
            return
        sink: queue.Queue[Any] = queue.Queue()
        stream = QueueStream(self.bearer, sink, self.settings.api_base_url)
        deadline = time.monotonic() + self.settings.max_seconds
        stream.deadline = deadline
        thread = stream.filter(threaded=True, expansions=EXPANSIONS, tweet_fields=TWEET_FIELDS,
                               user_fields=USER_FIELDS)
        try:
            while len(self._seen) < budget:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = sink.get(timeout=remaining)
                except queue.Empty:
                    break
                if item is _END:
                    break
                if isinstance(item, BaseException):
                    raise item
                payload, location = item
                yield self._candidate(payload), location
        finally:
            stream.stop()
            _join(thread, deadline)
            self.details["connections"] = stream.connections

    def _candidate(self, payload: Any) -> Any:
        if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
            return payload
        tweet = payload["data"]
        self._remember(str(tweet.get("id")))
        return with_author(tweet, users_by_id(payload.get("includes")))


def _join(thread: threading.Thread | None, deadline: float) -> None:
    if thread is None:
        return
    # tweepy only sleeps for a reconnect that ends before the deadline, then sees the stop
    thread.join(timeout=max(deadline - time.monotonic(), 0.0) + STREAM_STOP_GRACE_SECONDS)
    if thread.is_alive():
        log.warning("The X API stream thread has not ended yet; it stops at its next read.")


def sync_rules(client: tweepy.StreamingClient, wanted: list[str],
               policy: RetryPolicy | None = None) -> dict[str, list[str]]:
    """Make the stream's rules exactly `wanted`: add the missing ones, delete the others.

    Returns the rule values added and deleted.
    """
    get_rules = with_retries(RULES_GET_ENDPOINT, policy)(client.get_rules)
    current = [r for r in get_rules().get("data") or [] if isinstance(r, dict)]
    stale = [r for r in current if r.get("value") not in wanted]
    present = {r.get("value") for r in current}
    missing = [value for value in wanted if value not in present]
    if stale:
        delete = with_retries(RULES_POST_ENDPOINT, policy)(client.delete_rules)
        delete([str(r["id"]) for r in stale])
    if missing:
        add = with_retries(RULES_POST_ENDPOINT, policy)(client.add_rules)
        answer = add([tweepy.StreamRule(value=value, tag=RULE_TAG) for value in missing])
        refused = [e for e in answer.get("errors") or []
                   if isinstance(e, dict) and e.get("title") != "DuplicateRule"]
        if refused:
            first = refused[0]
            why = first.get("details") or first.get("detail") or first.get("title")
            raise TweetopsError(f"The X API refused stream rule {first.get('value')!r} ({why}); "
                                f"fix it in ingest.stream_rules.")
    return {"added": missing, "deleted": [str(r.get("value")) for r in stale]}


def stream_source(settings: IngestSettings, policy: RetryPolicy | None = None) -> SourceBatch:
    """X API v2 filtered stream: rules synced from `stream_rules`, tweets until a limit.

    The rules are synced when the batch is created; tweets flow once the candidates are
    iterated, until `max_tweets` (counting what a stopped run already collected) or
    `max_seconds`. There is no `since_id` on the filtered stream for most access levels, so a
    resumed run continues with what arrives now and the snapshot drops repeats.
    """
    wanted = list(dict.fromkeys(settings.stream_rules))
    if not wanted:
        raise TweetopsError("ingest.stream_rules is empty; give the filtered stream at least one "
                            "rule, e.g. ingest.stream_rules='[\"mlops\"]'.")
    bearer = bearer_token()
    rules_client = tweepy.StreamingClient(bearer, return_type=dict, wait_on_rate_limit=False)
    _mount_api_adapter(rules_client.session, settings.api_base_url)
    changes = sync_rules(rules_client, wanted, policy)
    rules_client.session.close()
    path = settings.checkpoint_dir / "stream.json"
    previous = load_checkpoint(path, StreamCheckpoint)
    resuming = (previous is not None and not previous.complete
                and sorted(previous.rules) == sorted(wanted))
    state = previous if resuming and previous is not None else StreamCheckpoint(rules=wanted)
    state.batch_seq = (previous.batch_seq if previous else 0) + 1
    save_checkpoint(path, state)
    collection = StreamCollection(settings, bearer, path, state)
    collection.details["rules_added"] = changes["added"]
    collection.details["rules_deleted"] = changes["deleted"]
    return collection.batch(f"{state.collected} tweets collected" if resuming else None)
