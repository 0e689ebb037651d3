"""The X API sources (`search`, `stream`) through tweepy against a real fake X API v2 server."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

import tweetops.ingest.step as ingest_step
from tests.conftest import Project
from tests.support.fake_x_api import RULES_PATH, SEARCH_PATH, STREAM_PATH, FakeXApi
from tweetops.errors import TweetopsError
from tweetops.ingest import xapi
from tweetops.ingest.record import format_api_time, validate_record
from tweetops.ingest.snapshot import iter_part_records, part_files
from tweetops.ingest.source_batch import SourceBatch
from tweetops.ingest.step import ingest
from tweetops.ingest.xapi import retry as xapi_retry
from tweetops.settings import Settings

TOKEN = "xtest-bearer-AAAAAAAAAAAAAAAAAAAAAK9qZ7uF2mW4pR8sT1vY3nB6cD0eH5jL"
RAW = Path("data/raw/tweets")
STAGING = Path("data/raw/.tweets.staging")  # where a replace run builds the next snapshot
QUARANTINE = Path("data/raw/quarantine")
CHECKPOINTS = Path("data/raw/checkpoints")
FAST = xapi.RetryPolicy(
    attempts=4,
    backoff_base=0.01,
    backoff_cap=0.05,
    rate_limit_margin=0.05,
    rate_limit_cap=3.0,
    rate_limit_default=0.05,
)


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Back off in milliseconds: the fake's 429 resets one second ahead anyway."""
    monkeypatch.setattr(xapi_retry, "RETRY_POLICY", FAST)


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    """The bearer token in X_BEARER_TOKEN, and no TWITTER_BEARER_TOKEN to fall back on."""
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    monkeypatch.delenv("TWITTER_BEARER_TOKEN", raising=False)
    return TOKEN


@pytest.fixture
def api() -> Iterator[FakeXApi]:
    """55 tweets by 7 users, 10 per search page."""
    with FakeXApi(token=TOKEN, n_tweets=55, n_users=7, page_size=10) as server:
        yield server


def _search(project: Project, api: FakeXApi, *overrides: str):
    return project.settings(
        "ingest.source=search",
        f"ingest.api_base_url={api.base_url}",
        "ingest.tweets_per_file=20",
        *overrides,
    )


def _stream(project: Project, api: FakeXApi, *overrides: str):
    return project.settings(
        "ingest.source=stream",
        f"ingest.api_base_url={api.base_url}",
        "ingest.tweets_per_file=5",
        "ingest.max_seconds=20",
        *overrides,
    )


def _snapshot_ids(folder: Path = RAW) -> list[str]:
    return [record["id"] for record in iter_part_records(folder)]


def _checkpoint(name: str) -> dict[str, Any]:
    return orjson.loads((CHECKPOINTS / name).read_bytes())


def _quarantined() -> list[dict[str, Any]]:
    return [
        orjson.loads(line)
        for path in sorted(QUARANTINE.glob("*.jsonl"))
        for line in path.read_bytes().splitlines()
        if line.strip()
    ]


def _stream_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "Tweepy Stream" and t.is_alive()]


def _killed_after(parts: int, source: Callable[..., SourceBatch]) -> Callable[..., SourceBatch]:
    """A source that dies like a killed process right after its `parts`-th sealed part file."""

    def killing_source(settings: Any) -> SourceBatch:
        batch = source(settings)
        sealed: list[Path] = []

        def on_part_sealed(path: Path) -> None:
            assert batch.on_part_sealed is not None
            batch.on_part_sealed(path)
            sealed.append(path)
            if len(sealed) == parts:
                batch.candidates.close()  # type: ignore[attr-defined]  # the process is gone
                raise RuntimeError("killed")

        return dataclasses.replace(batch, on_part_sealed=on_part_sealed)

    return killing_source


def _timed(source: Callable[..., SourceBatch], spans: list[float]) -> Callable[..., SourceBatch]:
    """`source`, appending to `spans` the seconds its candidates took from the first tweet asked
    for to the last (or to the error): the collection alone, not the step's set-up around it."""

    def timed_source(settings: Any) -> SourceBatch:
        batch = source(settings)

        def candidates() -> Iterator[tuple[Any, str]]:
            started = time.monotonic()
            try:
                yield from batch.candidates
            finally:
                spans.append(time.monotonic() - started)

        return dataclasses.replace(batch, candidates=candidates())

    return timed_source


# --- search --------------------------------------------------------------------------------


def test_search_pages_through_every_tweet_with_authors_embedded(
    project: Project, api: FakeXApi, token: str
) -> None:
    before = format_api_time(datetime.now(UTC))
    result = ingest(_search(project, api))
    after = format_api_time(datetime.now(UTC))

    records = list(iter_part_records(RAW))
    assert all(before <= r["fetched_at"] <= after for r in records)  # the page's receipt
    ids = [r["id"] for r in records]
    assert sorted(ids) == sorted(api.tweet_ids()) and len(ids) == len(set(ids)) == 55
    users = {u["id"]: u for u in api.users}
    for record in records:
        assert validate_record(record) == record
        assert record["author"]["username"] == users[record["author_id"]]["username"]
        assert record["author"]["public_metrics"] == users[record["author_id"]]["public_metrics"]
    by_id = {t["id"]: t for t in api.tweets}
    assert all(r["entities"]["hashtags"] == by_id[r["id"]]["entities"]["hashtags"] for r in records)

    pages = api.requests_to(SEARCH_PATH)
    assert len(pages) == 6 and all(p.status == 200 for p in pages)
    assert "next_token" not in pages[0].params
    tokens = [p.params["next_token"] for p in pages[1:]]
    assert len(set(tokens)) == 5
    first = pages[0].params
    assert first["query"] == "(spark OR mlflow OR mlops) -is:retweet"
    assert first["expansions"] == "author_id" and first["max_results"] == "100"
    assert set(first["tweet.fields"].split(",")) == set(xapi.TWEET_FIELDS)
    assert set(first["user.fields"].split(",")) == set(xapi.USER_FIELDS)

    assert result.counts.accepted == 55 and result.counts.quarantined == 0
    assert [p.name.split("-part-")[1] for p in part_files(RAW)] == [
        "00000.jsonl",
        "00001.jsonl",
        "00002.jsonl",
    ]
    manifest = orjson.loads(result.manifest_path.read_bytes())
    assert manifest["source"] == "search" and manifest["batch_id"].startswith("search-")
    assert manifest["details"]["pages"] == 6 and manifest["details"]["since_id"] is None
    assert _checkpoint("search.json")["complete"] is True


def test_search_stops_at_max_tweets_and_sends_the_time_window(
    project: Project, api: FakeXApi, token: str
) -> None:
    result = ingest(
        _search(
            project,
            api,
            "ingest.max_tweets=25",
            "ingest.start_time=2026-10-01T00:00:00Z",
            "ingest.end_time=2026-10-02T00:00:00Z",
        )
    )

    assert result.counts.accepted == 25
    newest_25 = {t["id"] for t in api.tweets[-25:]}
    assert set(_snapshot_ids()) == newest_25
    pages = api.requests_to(SEARCH_PATH)
    assert len(pages) == 3  # no fourth page fetched once 25 are in hand
    assert pages[0].params["max_results"] == "25"
    assert pages[0].params["start_time"] == "2026-10-01T00:00:00Z"
    assert pages[0].params["end_time"] == "2026-10-02T00:00:00Z"
    checkpoint = _checkpoint("search.json")
    assert checkpoint["complete"] is True and checkpoint["collected"] == 25


def test_rate_limit_waits_until_reset_then_continues(
    project: Project, api: FakeXApi, token: str
) -> None:
    api.fail_next("429", after=1)

    result = ingest(_search(project, api))

    pages = api.requests_to(SEARCH_PATH)
    limited = next(i for i, p in enumerate(pages) if p.status == 429)
    retry = pages[limited + 1]
    reset = int(pages[limited].response_headers["x-rate-limit-reset"])
    assert retry.at >= reset
    assert retry.params == pages[limited].params  # same next_token
    assert result.counts.accepted == 55 and sorted(_snapshot_ids()) == sorted(api.tweet_ids())


@pytest.mark.parametrize("fault", ["503", "drop"])
def test_server_errors_and_dropped_connections_retry_from_the_same_token(
    project: Project, api: FakeXApi, token: str, fault: str
) -> None:
    api.fail_next(fault, count=2, after=2)

    result = ingest(_search(project, api))

    pages = api.requests_to(SEARCH_PATH)
    faulted = [i for i, p in enumerate(pages) if p.fault == fault]
    assert faulted == [2, 3]
    assert (
        pages[2].params["next_token"]
        == pages[3].params["next_token"]
        == pages[4].params["next_token"]
    )
    assert pages[4].status == 200 and len(pages) == 8
    ids = _snapshot_ids()
    assert sorted(ids) == sorted(api.tweet_ids()) and len(ids) == len(set(ids))
    assert result.counts.duplicate == 0


def test_retries_are_bounded_and_end_in_one_sentence(
    project: Project, api: FakeXApi, token: str
) -> None:
    api.fail_next("503", count=100, after=1)

    with pytest.raises(TweetopsError) as raised:
        ingest(_search(project, api))

    message = str(raised.value)
    assert "GET /2/tweets/search/recent" in message and "503" in message
    assert message.endswith(".") and ". " not in message
    assert len(api.requests_to(SEARCH_PATH)) == 1 + FAST.attempts


def test_a_200_with_an_html_page_is_one_sentence_at_once_not_retried(
    project: Project, api: FakeXApi, token: str
) -> None:
    api.fail_next("html", count=100)

    with pytest.raises(TweetopsError) as raised:
        ingest(_search(project, api))

    message = str(raised.value)
    assert message.startswith(
        "The X API answered GET /2/tweets/search/recent with a text/html page instead of JSON"
    )
    assert "ingest.api_base_url" in message and message.endswith(".")
    assert len(api.requests_to(SEARCH_PATH)) == 1  # no retries


@pytest.mark.parametrize("status", ["401", "403"])
def test_refused_token_names_the_env_var_and_endpoint(
    project: Project, api: FakeXApi, monkeypatch: pytest.MonkeyPatch, status: str
) -> None:
    wrong = "xtest-wrong-token-7Hq2"
    monkeypatch.setenv("X_BEARER_TOKEN", wrong if status == "401" else TOKEN)
    if status == "403":
        api.fail_next("403")

    with pytest.raises(TweetopsError) as raised:
        ingest(_search(project, api))

    message = str(raised.value)
    assert "X_BEARER_TOKEN" in message and "GET /2/tweets/search/recent" in message
    assert status in message and wrong not in message and TOKEN not in message
    assert message.endswith(".") and ". " not in message
    assert len(api.requests_to(SEARCH_PATH)) == 1  # refused is final: no retries


def test_missing_token_is_one_sentence_naming_both_env_vars(
    project: Project, api: FakeXApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("X_BEARER_TOKEN", raising=False)
    monkeypatch.delenv("TWITTER_BEARER_TOKEN", raising=False)

    for source in ("search", "stream"):
        with pytest.raises(TweetopsError) as raised:
            ingest(
                project.settings(f"ingest.source={source}", f"ingest.api_base_url={api.base_url}")
            )
        message = str(raised.value)
        assert "X_BEARER_TOKEN" in message and "TWITTER_BEARER_TOKEN" in message
        assert message.endswith(".") and ". " not in message
    assert api.requests == []


def test_twitter_bearer_token_is_the_fallback(
    project: Project, api: FakeXApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("X_BEARER_TOKEN", raising=False)
    monkeypatch.setenv("TWITTER_BEARER_TOKEN", TOKEN)

    result = ingest(_search(project, api, "ingest.max_tweets=10"))

    assert result.counts.accepted == 10
    assert all(r.authorized for r in api.requests)


def test_author_missing_from_includes_is_quarantined_not_dropped(
    project: Project, api: FakeXApi, token: str
) -> None:
    hidden = set(api.hide_user(api.users[2]["id"]))
    assert hidden

    result = ingest(_search(project, api))

    assert result.counts.quarantined == len(hidden)
    assert result.counts.accepted == 55 - len(hidden)
    entries = _quarantined()
    assert {e["record"]["id"] for e in entries} == hidden
    assert all(e["reason"] == "record has no embedded author" for e in entries)
    assert all(
        e["location"].startswith("search:page=") and ":index=" in e["location"] for e in entries
    )
    manifest = orjson.loads(result.manifest_path.read_bytes())
    assert manifest["counts"]["quarantined"] == len(hidden)


def _search_killed_on_page_two(
    project: Project, api: FakeXApi, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """A search of 4-tweet part files killed after its third part (tweets 11-12 are on page 2);
    its settings."""
    settings = _search(project, api, "ingest.tweets_per_file=4")
    monkeypatch.setitem(ingest_step.SOURCES, "search", _killed_after(3, xapi.search_source))
    with pytest.raises(RuntimeError, match="killed"):
        ingest(settings)
    return settings


def test_killed_mid_page_resumes_without_duplicates_or_gaps(
    project: Project, api: FakeXApi, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _search_killed_on_page_two(project, api, monkeypatch)

    checkpoint = _checkpoint("search.json")
    second_page_token = api.requests_to(SEARCH_PATH)[1].params["next_token"]
    assert checkpoint["collected"] == 12 and checkpoint["complete"] is False
    assert checkpoint["next_token"] == second_page_token  # tweets 11-12 of page 2 are durable
    assert len(checkpoint["page_done_ids"]) == 2 and checkpoint["pages_done"] == 1
    assert _snapshot_ids() == []  # the live snapshot is untouched until the run completes
    assert len(_snapshot_ids(STAGING)) == 12
    first_batch = {p.name.split("-part-")[0] for p in part_files(STAGING)}

    monkeypatch.setitem(ingest_step.SOURCES, "search", xapi.search_source)
    before = len(api.requests)
    result = ingest(settings)

    resumed = api.requests[before:]
    assert resumed[0].params["next_token"] == second_page_token
    assert result.counts.accepted == 43 and result.counts.duplicate == 0
    ids = _snapshot_ids()
    assert sorted(ids) == sorted(api.tweet_ids()) and len(ids) == len(set(ids))
    batches = {p.name.split("-part-")[0] for p in part_files(RAW)}
    assert len(batches) == 2 and first_batch < batches
    manifest = orjson.loads(result.manifest_path.read_bytes())
    assert manifest["details"]["resumed"] is True
    assert manifest["details"]["resumed_from"] == second_page_token
    assert _checkpoint("search.json")["complete"] is True
    assert not STAGING.exists()  # swapped in whole


def test_a_replace_run_in_between_abandons_the_stopped_search(
    project: Project, api: FakeXApi, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _search_killed_on_page_two(project, api, monkeypatch)
    ingest(project.settings("ingest.n_tweets=30"))  # discards the stopped search's staging ...
    assert not (CHECKPOINTS / "search.json").exists()  # ... and so its checkpoint

    monkeypatch.setitem(ingest_step.SOURCES, "search", xapi.search_source)
    result = ingest(settings)
    assert result.counts.accepted == 55  # from the first page again: no gap
    assert sorted(_snapshot_ids()) == sorted(api.tweet_ids())


def test_run_that_ran_out_of_retries_resumes_from_its_page(
    project: Project, api: FakeXApi, token: str
) -> None:
    settings = _search(project, api, "ingest.tweets_per_file=4")
    api.fail_next("503", count=FAST.attempts, after=3)
    with pytest.raises(TweetopsError):
        ingest(settings)

    failed = api.requests_to(SEARCH_PATH)[-1]
    checkpoint = _checkpoint("search.json")
    assert checkpoint["collected"] == 30 and checkpoint["next_token"] == failed.params["next_token"]
    assert len(_snapshot_ids(STAGING)) == 30  # the half-full part was sealed on the way out
    assert _snapshot_ids() == []

    before = len(api.requests)
    result = ingest(settings)

    assert api.requests[before].params["next_token"] == failed.params["next_token"]
    assert result.counts.accepted == 25
    ids = _snapshot_ids()
    assert sorted(ids) == sorted(api.tweet_ids()) and len(ids) == len(set(ids))


def test_after_a_complete_run_append_collects_only_newer_tweets(
    project: Project, api: FakeXApi, token: str
) -> None:
    ingest(_search(project, api, "ingest.mode=append"))
    newest = max(api.tweet_ids(), key=int)
    assert _checkpoint("search.json")["newest_id"] == newest
    new = api.add_tweets(5)

    before = len(api.requests)
    result = ingest(_search(project, api, "ingest.mode=append"))

    incremental = api.requests[before:]
    assert [r.params["since_id"] for r in incremental] == [newest]
    assert result.counts.accepted == 5 and result.counts.duplicate == 0
    ids = _snapshot_ids()
    assert sorted(ids) == sorted(api.tweet_ids()) and len(ids) == 60
    assert {t["id"] for t in new} <= set(ids)
    manifest = orjson.loads(result.manifest_path.read_bytes())
    assert manifest["details"]["since_id"] == newest
    assert _checkpoint("search.json")["newest_id"] == max(ids, key=int)

    before = len(api.requests)
    result = ingest(_search(project, api))  # mode replace: a full snapshot again

    assert "since_id" not in api.requests[before].params
    assert result.counts.accepted == 60


# --- stream --------------------------------------------------------------------------------


def test_stream_syncs_rules_and_collects_max_tweets_through_keep_alives(
    project: Project, api: FakeXApi, token: str
) -> None:
    api.set_rules("old rule", "mlops")
    kept_id = next(r["id"] for r in api.rules if r["value"] == "mlops")
    old_id = next(r["id"] for r in api.rules if r["value"] == "old rule")

    before = format_api_time(datetime.now(UTC))
    result = ingest(_stream(project, api, "ingest.max_tweets=12"))
    after = format_api_time(datetime.now(UTC))

    assert {r["value"] for r in api.rules} == {"spark OR mlflow", "mlops"}
    assert next(r["id"] for r in api.rules if r["value"] == "mlops") == kept_id
    posts = [r.body for r in api.requests_to(RULES_PATH, "POST")]
    assert posts == [
        {"delete": {"ids": [old_id]}},
        {"add": [{"value": "spark OR mlflow", "tag": "tweetops"}]},
    ]
    assert result.counts.accepted == 12
    records = list(iter_part_records(RAW))
    assert [r["id"] for r in records] == [t["id"] for t in api.tweets[:12]]
    assert all(before <= r["fetched_at"] <= after for r in records)  # each tweet's receipt
    assert all(validate_record(r) == r for r in records)
    stream_request = api.requests_to(STREAM_PATH)[0]
    assert stream_request.params["expansions"] == "author_id"
    assert set(stream_request.params["tweet.fields"].split(",")) == set(xapi.TWEET_FIELDS)
    assert api.stream_connections() == 1 and not _stream_threads()
    assert api.keepalives_sent() >= 12  # one before every tweet line
    manifest = orjson.loads(result.manifest_path.read_bytes())
    assert manifest["details"]["rules"] == ["spark OR mlflow", "mlops"]
    assert manifest["details"]["rules_deleted"] == ["old rule"]
    assert _checkpoint("stream.json") | {"batch_seq": 0} == {
        "rules": ["spark OR mlflow", "mlops"],
        "collected": 12,
        "complete": True,
        "newest_id": api.tweets[11]["id"],
        "batch_seq": 0,
    }


def test_stream_reconnects_after_a_drop_without_duplicates(
    project: Project, api: FakeXApi, token: str
) -> None:
    api.set_rules("spark OR mlflow", "mlops")
    api.drop_stream_after(5)

    result = ingest(_stream(project, api, "ingest.max_tweets=12"))

    assert api.stream_connections() == 2
    ids = _snapshot_ids()
    assert ids == [t["id"] for t in api.tweets[:12]]
    assert result.counts.accepted == 12 and result.counts.duplicate == 1  # the replayed tweet
    assert not _stream_threads()


def test_stream_stops_at_max_seconds(
    project: Project, api: FakeXApi, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.set_rules("spark OR mlflow", "mlops")
    api.limit_stream(3)  # then keep-alives only: below max_tweets, only the clock ends it
    spans: list[float] = []
    monkeypatch.setitem(ingest_step.SOURCES, "stream", _timed(xapi.stream_source, spans))

    result = ingest(_stream(project, api, "ingest.max_tweets=100", "ingest.max_seconds=1"))

    assert result.counts.accepted == 3
    [collecting] = spans
    assert 1 <= collecting < 1 + 5  # max_seconds, then the stream thread's join
    assert not _stream_threads()
    assert _checkpoint("stream.json")["complete"] is True


def test_stream_refused_token_fails_once_instead_of_reconnecting(
    project: Project, api: FakeXApi, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.set_rules("spark OR mlflow", "mlops")
    api.fail_next("401", endpoint="stream")
    spans: list[float] = []
    monkeypatch.setitem(ingest_step.SOURCES, "stream", _timed(xapi.stream_source, spans))

    with pytest.raises(TweetopsError) as raised:
        ingest(_stream(project, api))

    message = str(raised.value)
    assert "X_BEARER_TOKEN" in message and "GET /2/tweets/search/stream" in message
    assert "401" in message and message.endswith(".") and ". " not in message
    assert len(api.requests_to(STREAM_PATH)) == 1
    [collecting] = spans
    assert collecting < 5  # failed at once: not after tweepy's first HTTP-error wait (5 s)
    assert not _stream_threads()


def test_stream_killed_run_resumes_and_counts_what_it_had(
    project: Project, api: FakeXApi, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.set_rules("spark OR mlflow", "mlops")
    settings = _stream(project, api, "ingest.max_tweets=10", "ingest.tweets_per_file=4")
    monkeypatch.setitem(ingest_step.SOURCES, "stream", _killed_after(1, xapi.stream_source))
    with pytest.raises(RuntimeError, match="killed"):
        ingest(settings)
    assert _checkpoint("stream.json")["collected"] == 4 and not _stream_threads()

    monkeypatch.setitem(ingest_step.SOURCES, "stream", xapi.stream_source)
    result = ingest(settings)

    ids = _snapshot_ids()
    assert len(ids) == len(set(ids)) == 10 and result.counts.accepted == 6
    assert set(ids) <= api.tweet_ids()
    checkpoint = _checkpoint("stream.json")
    assert checkpoint["complete"] is True and checkpoint["collected"] == 10
    assert orjson.loads(result.manifest_path.read_bytes())["details"]["resumed"] is True


def test_stream_tweet_without_author_is_quarantined(
    project: Project, api: FakeXApi, token: str
) -> None:
    api.set_rules("mlops")
    hidden = set(api.hide_user(api.users[0]["id"]))
    first_ten = [t["id"] for t in api.tweets[:10]]

    result = ingest(_stream(project, api, "ingest.max_tweets=10"))

    expected_hidden = hidden & set(first_ten)
    assert expected_hidden
    assert result.counts.quarantined == len(expected_hidden)
    assert result.counts.accepted == 10 - len(expected_hidden)
    entries = _quarantined()
    assert all(e["reason"] == "record has no embedded author" for e in entries)
    assert all(e["location"].startswith("stream:connection=1:line=") for e in entries)


# --- the token never leaks -----------------------------------------------------------------


def test_bearer_token_never_reaches_disk_logs_or_output(
    project: Project,
    api: FakeXApi,
    token: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    for library in ("tweepy", "urllib3", "requests"):  # the CLI keeps their noise at WARNING
        caplog.set_level(logging.DEBUG, logger=library)
    api.set_rules("old rule")
    api.fail_next("503", after=1)
    api.drop_stream_after(3)

    ingest(_search(project, api, "ingest.mode=append"))
    ingest(_stream(project, api, "ingest.mode=append", "ingest.max_tweets=8"))

    captured = capfd.readouterr()
    log_text = caplog.text + "".join(f"{r.getMessage()}\n" for r in caplog.records)
    assert "Making API request" in log_text  # tweepy's DEBUG request log was captured...
    assert "Bearer <redacted>" in log_text  # ...with its Authorization header redacted
    for text in (captured.out, captured.err, log_text):
        assert TOKEN not in text
    files = [p for p in project.root.rglob("*") if p.is_file()]
    assert any(p.name == "mlflow.db" for p in files) and any(p.suffix == ".jsonl" for p in files)
    leaking = [p for p in files if TOKEN.encode() in p.read_bytes()]
    assert leaking == []
