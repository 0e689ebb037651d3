"""X API v2 filtered stream: rules synced from `ingest.stream_rules`, tweets until a limit.

tweepy's `StreamingClient` reads the stream on its own thread (:class:`QueueStream`), which puts
each line on a queue; the collecting side joins each tweet with its author and stops at
`max_tweets` or `max_seconds`. tweepy's reconnect backoff is kept, but never outlives the
collection.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any

import orjson
import requests
import tweepy

from tweetops.errors import TweetopsError
from tweetops.ingest.record import format_api_time, users_by_id, with_author
from tweetops.ingest.snapshot import Rejected
from tweetops.ingest.source_batch import SourceBatch
from tweetops.ingest.xapi.auth import auth_error, bearer_token
from tweetops.ingest.xapi.checkpoint import (
    Collection,
    StreamCheckpoint,
    load_checkpoint,
    save_checkpoint,
)
from tweetops.ingest.xapi.fields import EXPANSIONS, TWEET_FIELDS, USER_FIELDS
from tweetops.ingest.xapi.retry import RetryPolicy, with_retries
from tweetops.ingest.xapi.transport import mount_api_adapter
from tweetops.settings import IngestSettings

log = logging.getLogger(__name__)

STREAM_ENDPOINT = "GET /2/tweets/search/stream"
RULES_GET_ENDPOINT = "GET /2/tweets/search/stream/rules"
RULES_POST_ENDPOINT = "POST /2/tweets/search/stream/rules"
RULE_TAG = "tweetops"
# tweepy's reconnect waits (BaseStream._connect), mirrored to know whether a wait would end
# after max_seconds: network errors 0 s, +0.25 s up to 16 s; HTTP errors 5 s doubling up to
# 320 s, at least 60 s after a 429
STREAM_NETWORK_WAIT_STEP, STREAM_NETWORK_WAIT_MAX = 0.25, 16.0
STREAM_HTTP_WAIT_START, STREAM_HTTP_WAIT_MAX, STREAM_429_WAIT_START = 5.0, 320.0, 60.0
STREAM_STOP_GRACE_SECONDS = 5.0

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
        mount_api_adapter(self.session, api_base_url, timeout=None)
        self.session.hooks["response"].append(self._remember_response)
        self.sink = sink
        self.deadline = float("inf")
        self.connections = 0
        self._lines = 0
        self._stopping = False
        self._http_wait = STREAM_HTTP_WAIT_START
        self._network_wait = 0.0
        self._response: requests.Response | None = None

    def _remember_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
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
            self.sink.put((Rejected(raw_data, f"stream line is not valid JSON ({exc})"), location))
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
            self._fail(
                TweetopsError(
                    f"The X API rejected {STREAM_ENDPOINT} ({status_code} {phrase}); check "
                    f"ingest.stream_rules and the app's access to the filtered stream."
                )
            )
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
        self.sink.put(
            TweetopsError(
                f"The X API filtered stream stopped on an unexpected {type(exception).__name__} "
                f"({exception}); run the ingest again to resume from the checkpoint."
            )
        )

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
            log.warning(
                "X API stream %s; the reconnect wait of %.2f s would pass "
                "ingest.max_seconds, so the collection stops here.",
                why,
                wait,
            )
            self._stopping = True
            self.disconnect()


def _phrase(status_code: int) -> str:
    try:
        return HTTPStatus(status_code).phrase
    except ValueError:
        return "HTTP error"


class StreamCollection(Collection):
    """One run of the filtered stream: its candidates, and the checkpoint behind them."""

    source = "stream"
    state: StreamCheckpoint

    def __init__(
        self, settings: IngestSettings, bearer: str, checkpoint_path: Path, state: StreamCheckpoint
    ) -> None:
        super().__init__(
            checkpoint_path,
            state,
            {
                "rules": list(state.rules),
                "max_tweets": settings.max_tweets,
                "max_seconds": settings.max_seconds,
                "connections": 0,
            },
        )
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
        thread = stream.filter(
            threaded=True, expansions=EXPANSIONS, tweet_fields=TWEET_FIELDS, user_fields=USER_FIELDS
        )
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
        received = format_api_time(datetime.now(UTC))
        return {**with_author(tweet, users_by_id(payload.get("includes"))), "fetched_at": received}


def _join(thread: threading.Thread | None, deadline: float) -> None:
    if thread is None:
        return
    # tweepy only sleeps for a reconnect that ends before the deadline, then sees the stop
    thread.join(timeout=max(deadline - time.monotonic(), 0.0) + STREAM_STOP_GRACE_SECONDS)
    if thread.is_alive():
        log.warning("The X API stream thread has not ended yet; it stops at its next read.")


def sync_rules(
    client: tweepy.StreamingClient, wanted: list[str], policy: RetryPolicy | None = None
) -> dict[str, list[str]]:
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
        refused = [
            e
            for e in answer.get("errors") or []
            if isinstance(e, dict) and e.get("title") != "DuplicateRule"
        ]
        if refused:
            first = refused[0]
            why = first.get("details") or first.get("detail") or first.get("title")
            raise TweetopsError(
                f"The X API refused stream rule {first.get('value')!r} ({why}); "
                f"fix it in ingest.stream_rules."
            )
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
        raise TweetopsError(
            "ingest.stream_rules is empty; give the filtered stream at least one "
            "rule, e.g. ingest.stream_rules='[\"mlops\"]'."
        )
    bearer = bearer_token()
    rules_client = tweepy.StreamingClient(bearer, return_type=dict, wait_on_rate_limit=False)
    mount_api_adapter(rules_client.session, settings.api_base_url)
    changes = sync_rules(rules_client, wanted, policy)
    rules_client.session.close()
    path = settings.checkpoint_dir / "stream.json"
    previous = load_checkpoint(path, StreamCheckpoint)
    resuming = (
        previous is not None and not previous.complete and sorted(previous.rules) == sorted(wanted)
    )
    state = previous if resuming and previous is not None else StreamCheckpoint(rules=wanted)
    state.batch_seq = (previous.batch_seq if previous else 0) + 1
    save_checkpoint(path, state)
    collection = StreamCollection(settings, bearer, path, state)
    collection.details["rules_added"] = changes["added"]
    collection.details["rules_deleted"] = changes["deleted"]
    return collection.batch(f"{state.collected} tweets collected" if resuming else None)
