"""X API v2 recent search: pages of tweets joined with their authors, resumable.

A search collection pages through `GET /2/tweets/search/recent` with `tweepy.Paginator`, every
request under the retry policy; its checkpoint remembers the page (`next_token`) and the tweets
of it already durable, so a stopped run continues where it stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tweepy

from tweetops.ingest.record import format_api_time, users_by_id, with_author
from tweetops.ingest.source_batch import SourceBatch
from tweetops.ingest.xapi.auth import bearer_token
from tweetops.ingest.xapi.checkpoint import (
    Collection,
    SearchCheckpoint,
    load_checkpoint,
    save_checkpoint,
)
from tweetops.ingest.xapi.fields import EXPANSIONS, TWEET_FIELDS, USER_FIELDS
from tweetops.ingest.xapi.retry import RetryPolicy, with_retries
from tweetops.ingest.xapi.transport import mount_api_adapter
from tweetops.settings import IngestSettings

log = logging.getLogger(__name__)

SEARCH_ENDPOINT = "GET /2/tweets/search/recent"
PAGE_MIN, PAGE_MAX = 10, 100  # what recent search accepts as max_results


@dataclass
class _Cursor:
    """Position of the last candidate handed out, to turn into a checkpoint at a seal."""

    page_number: int
    request_token: str | None
    next_token: str | None
    done_ids: list[str]
    rest_of_page_done: bool


class SearchCollection(Collection):
    """One run of recent search: its candidates, and the checkpoint behind them."""

    source = "search"
    state: SearchCheckpoint

    def __init__(
        self,
        settings: IngestSettings,
        client: tweepy.Client,
        checkpoint_path: Path,
        state: SearchCheckpoint,
        policy: RetryPolicy | None,
    ) -> None:
        super().__init__(
            checkpoint_path,
            state,
            {
                "query": state.query,
                "start_time": state.start_time,
                "end_time": state.end_time,
                "since_id": state.since_id,
                "max_tweets": settings.max_tweets,
                "pages": 0,
            },
        )
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
            search,
            state.query,
            pagination_token=state.next_token,
            max_results=min(max(budget, PAGE_MIN), PAGE_MAX),
            expansions=EXPANSIONS,
            tweet_fields=TWEET_FIELDS,
            user_fields=USER_FIELDS,
            since_id=state.since_id,
            start_time=self.settings.start_time,
            end_time=self.settings.end_time,
        )
        request_token, page_number = state.next_token, state.pages_done
        skip = set(state.page_done_ids)
        for page in pages:
            page_number += 1
            self.details["pages"] += 1
            next_token = (page.get("meta") or {}).get("next_token")
            tweets = [t for t in page.get("data") or [] if isinstance(t, dict)]
            users = users_by_id(page.get("includes"))
            fetched_at = format_api_time(datetime.now(UTC))  # the page's receipt
            done = [str(t.get("id")) for t in tweets if str(t.get("id")) in skip]
            for index, tweet in enumerate(tweets):
                tweet_id = str(tweet.get("id"))
                if tweet_id in skip:
                    continue
                if len(self._seen) >= budget:
                    return
                done.append(tweet_id)
                rest_done = all(str(t.get("id")) in skip for t in tweets[index + 1 :])
                self._cursor = _Cursor(
                    page_number, request_token, next_token, list(done), rest_done
                )
                self._remember(tweet_id)
                yield (
                    {**with_author(tweet, users), "fetched_at": fetched_at},
                    f"search:page={page_number}:index={index}",
                )
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
    client = tweepy.Client(bearer_token=bearer_token(), return_type=dict, wait_on_rate_limit=False)
    mount_api_adapter(client.session, settings.api_base_url)
    path = settings.checkpoint_dir / "search.json"
    fresh = SearchCheckpoint(
        query=settings.query, start_time=_iso(settings.start_time), end_time=_iso(settings.end_time)
    )
    previous = load_checkpoint(path, SearchCheckpoint)
    state, resuming = fresh, False
    if previous is not None and previous.same_window(fresh):
        if not previous.complete:
            state, resuming = previous, True
            log.info(
                "Resuming the search collection from its checkpoint (%d tweets collected).",
                state.collected,
            )
        elif settings.mode == "append":
            state.since_id = state.newest_id = previous.newest_id
    state.batch_seq = (previous.batch_seq if previous else 0) + 1
    save_checkpoint(path, state)
    collection = SearchCollection(settings, client, path, state, policy)
    return collection.batch((state.next_token or "first page") if resuming else None)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
