"""A fake X API v2 on 127.0.0.1: recent search, filtered stream and its rules, with faults.

Real HTTP (stdlib `ThreadingHTTPServer` in a thread), so tweepy and requests run unchanged and
the product reaches it through `ingest.api_base_url`. The data is a deterministic list of tweets
by a few users in X API v2 shape. Faults are scripted per test (`fail_next`, `drop_stream_after`)
and every request is recorded (without its Authorization header) so tests can assert on what
the client sent, e.g. that a retry after a 503 asked for the same `next_token`.

    with FakeXApi(token="t0k", n_tweets=55, page_size=10) as api:
        api.fail_next("503", after=2)
        ... ingest with ingest.api_base_url=api.base_url ...
        assert api.requests_to(SEARCH_PATH)[3].params["next_token"] == ...
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

SEARCH_PATH = "/2/tweets/search/recent"
STREAM_PATH = "/2/tweets/search/stream"
RULES_PATH = "/2/tweets/search/stream/rules"
ENDPOINTS = {"search": SEARCH_PATH, "stream": STREAM_PATH, "rules": RULES_PATH}
FAULT_KINDS = ("429", "503", "drop", "401", "403", "html")

FIRST_TWEET_ID = 1_850_000_000_000_000_000
TWEET_ID_STEP = 4_194_304_007
START_TIME = datetime(2026, 10, 1, tzinfo=UTC)
TWEET_SPACING = timedelta(seconds=97)
DEFAULT_TWEET_FIELDS = ("id", "text", "edit_history_tweet_ids")
DEFAULT_USER_FIELDS = ("id", "name", "username")
HASHTAGS = ("spark", "mlflow", "mlops", "data", "python")


def api_time(value: datetime) -> str:
    """X's timestamp format: `2026-10-01T18:03:12.000Z`."""
    return (
        value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    )


def make_user(index: int) -> dict[str, Any]:
    """The user object (all user.fields) of user number `index`."""
    return {
        "id": str(1_000_000_000 + index),
        "name": f"User {index}",
        "username": f"user_{index}",
        "created_at": api_time(datetime(2019, 3, 2, 10, tzinfo=UTC) + timedelta(days=37 * index)),
        "verified": index % 4 == 0,
        "public_metrics": {
            "followers_count": 100 + 37 * index,
            "following_count": 50 + index,
            "tweet_count": 1000 + 11 * index,
            "listed_count": index % 5,
            "like_count": 300 + 7 * index,
        },
    }


def make_tweet(index: int, author: dict[str, Any]) -> dict[str, Any]:
    """The tweet object (all tweet.fields) of tweet number `index`; ids rise with `index`."""
    tweet_id = str(FIRST_TWEET_ID + TWEET_ID_STEP * index)
    tag = HASHTAGS[index % len(HASHTAGS)]
    prefix = f"Tweet {index} about "
    text = f"{prefix}#{tag} and pipelines"
    tweet: dict[str, Any] = {
        "id": tweet_id,
        "edit_history_tweet_ids": [tweet_id],
        "created_at": api_time(START_TIME + TWEET_SPACING * index),
        "text": text,
        "lang": "es" if index % 6 == 5 else "en",
        "author_id": author["id"],
        "public_metrics": {
            "retweet_count": index % 3,
            "reply_count": index % 2,
            "like_count": (7 * index) % 23,
            "quote_count": index % 4 // 3,
            "bookmark_count": 0,
            "impression_count": 40 + index,
        },
        "entities": {
            "hashtags": [{"start": len(prefix), "end": len(prefix) + len(tag) + 1, "tag": tag}]
        },
    }
    if index % 5 == 0:
        tweet["attachments"] = {"media_keys": [f"3_{tweet_id}"]}
    if index % 7 == 6:
        quoted = FIRST_TWEET_ID + TWEET_ID_STEP * (index - 1)
        tweet["referenced_tweets"] = [{"type": "quoted", "id": str(quoted)}]
    return tweet


@dataclass
class RecordedRequest:
    """One request the fake received; `headers` never holds the Authorization header."""

    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: Any
    authorized: bool
    at: float
    status: int = 0
    fault: str | None = None
    response_headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Fault:
    kind: str
    endpoint: str
    count: int
    after: int


@dataclass
class _State:
    users: list[dict[str, Any]]
    tweets: list[dict[str, Any]]  # oldest first
    hidden_users: set[str] = field(default_factory=set)
    rules: dict[str, dict[str, str]] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    faults: list[_Fault] = field(default_factory=list)
    stream_drops: list[int] = field(default_factory=list)
    stream_position: int = 0
    stream_rewind: int = 0
    stream_limit: int | None = None
    stream_connections: int = 0
    keepalives_sent: int = 0
    rate_remaining: int = 450
    next_rule_id: int = 1_580_000_000_000_000_000


class FakeXApi:
    """An X API v2 stand-in serving `n_tweets` tweets by `n_users` users on 127.0.0.1.

    `page_size` caps a search page below what the client asks for, so a handful of tweets
    spans several pages. The filtered stream sends the same tweets oldest first (one line each,
    with a `\\r\\n` keep-alive before every line and every `keepalive_interval` seconds once it
    has nothing left), matching the first rule; after a dropped connection it first resends the
    last `stream_replay` tweets, as a backfilled reconnect would.
    """

    def __init__(
        self,
        *,
        token: str,
        n_tweets: int = 55,
        n_users: int = 7,
        page_size: int = 100,
        stream_interval: float = 0.002,
        keepalive_interval: float = 0.02,
        stream_replay: int = 1,
    ) -> None:
        users = [make_user(index) for index in range(n_users)]
        tweets = [make_tweet(index, users[(index * 3) % n_users]) for index in range(n_tweets)]
        self.token = token
        self.page_size = page_size
        self.stream_interval = stream_interval
        self.keepalive_interval = keepalive_interval
        self.stream_replay = stream_replay
        self._state = _State(users=users, tweets=tweets)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeXApi:
        """Listen on a free port of 127.0.0.1 and serve in a daemon thread."""
        handler = type("Handler", (_Handler,), {"api": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            name="fake-x-api",
            kwargs={"poll_interval": 0.05},
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """End open streams, stop serving and close the listening socket."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeXApi:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>`, what `ingest.api_base_url` should be set to."""
        assert self._server is not None, "start the fake X API first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- data ------------------------------------------------------------------------------

    @property
    def tweets(self) -> list[dict[str, Any]]:
        """Every tweet (full tweet.fields), oldest first."""
        with self._lock:
            return list(self._state.tweets)

    @property
    def users(self) -> list[dict[str, Any]]:
        """Every user (full user.fields)."""
        with self._lock:
            return list(self._state.users)

    def tweet_ids(self) -> set[str]:
        """The ids of every tweet the fake holds."""
        return {tweet["id"] for tweet in self.tweets}

    def add_tweets(self, count: int) -> list[dict[str, Any]]:
        """Append `count` newer tweets (as if posted since) and return them."""
        with self._lock:
            state = self._state
            start = len(state.tweets)
            new = [
                make_tweet(index, state.users[(index * 3) % len(state.users)])
                for index in range(start, start + count)
            ]
            state.tweets.extend(new)
            return new

    def hide_user(self, user_id: str) -> list[str]:
        """Leave `user_id` out of every `includes.users`; return the ids of their tweets."""
        with self._lock:
            self._state.hidden_users.add(user_id)
            return [t["id"] for t in self._state.tweets if t["author_id"] == user_id]

    # -- faults ----------------------------------------------------------------------------

    def fail_next(
        self, kind: str, count: int = 1, *, endpoint: str = "search", after: int = 0
    ) -> None:
        """Answer `count` requests to `endpoint` with fault `kind`, after `after` good ones.

        kind: "429" (with `x-rate-limit-reset` one second ahead), "503", "401", "403", or
        "drop" (headers and half the body with the full Content-Length, then the socket is
        closed). endpoint: "search", "stream" or "rules". Faults queue up in order.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; use one of {FAULT_KINDS}")
        if endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; use one of {sorted(ENDPOINTS)}")
        with self._lock:
            self._state.faults.append(_Fault(kind, endpoint, count, after))

    def drop_stream_after(self, tweets: int) -> None:
        """Make the next stream connection drop (no closing chunk) after sending `tweets`."""
        with self._lock:
            self._state.stream_drops.append(tweets)

    def limit_stream(self, tweets: int | None) -> None:
        """Stream only the first `tweets` tweets, then nothing but keep-alives."""
        with self._lock:
            self._state.stream_limit = tweets

    def _take_fault(self, endpoint: str) -> str | None:
        with self._lock:
            for fault in self._state.faults:
                if fault.endpoint != endpoint:
                    continue
                if fault.after > 0:
                    fault.after -= 1
                    return None
                fault.count -= 1
                if fault.count <= 0:
                    self._state.faults.remove(fault)
                return fault.kind
        return None

    # -- rules -----------------------------------------------------------------------------

    @property
    def rules(self) -> list[dict[str, str]]:
        """The active stream rules, in the order they were added."""
        with self._lock:
            return list(self._state.rules.values())

    def set_rules(self, *values: str, tag: str = "preexisting") -> None:
        """Replace the active stream rules by `values` (as if added earlier by someone)."""
        with self._lock:
            self._state.rules.clear()
            for value in values:
                self._add_rule_locked(value, tag)

    def _add_rule_locked(self, value: str, tag: str | None) -> dict[str, str]:
        state = self._state
        state.next_rule_id += 1
        rule = {"id": str(state.next_rule_id), "value": value}
        if tag is not None:
            rule["tag"] = tag
        state.rules[rule["id"]] = rule
        return rule

    # -- recorded requests -----------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in arrival order."""
        with self._lock:
            return list(self._state.requests)

    def requests_to(self, path: str, method: str = "GET") -> list[RecordedRequest]:
        """The recorded requests for one path and method."""
        return [r for r in self.requests if r.path == path and r.method == method]

    def stream_connections(self) -> int:
        """How many times the filtered stream was connected with a 200."""
        with self._lock:
            return self._state.stream_connections

    def keepalives_sent(self) -> int:
        """How many `\\r\\n` keep-alive lines the stream has sent."""
        with self._lock:
            return self._state.keepalives_sent

    def _count_keepalive(self) -> None:
        with self._lock:
            self._state.keepalives_sent += 1

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._state.requests.append(request)

    # -- responses (called by the handler) -------------------------------------------------

    def search_page(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """Status and body of GET /2/tweets/search/recent for `params`."""
        try:
            max_results = int(params.get("max_results", "10"))
        except ValueError:
            max_results = 0
        if not 10 <= max_results <= 100:
            return 400, _invalid_request(
                "max_results", params.get("max_results", ""), "is not between 10 and 100"
            )
        with self._lock:
            matching = [t for t in reversed(self._state.tweets) if _matches(t, params)]
            hidden = set(self._state.hidden_users)
            users = {u["id"]: u for u in self._state.users}
        start = 0
        if "next_token" in params:
            anchor = _token_anchor(params["next_token"])
            if anchor is None:
                return 400, _invalid_request("next_token", params["next_token"], "is invalid")
            start = next(
                (i for i, t in enumerate(matching) if int(t["id"]) <= anchor), len(matching)
            )
        page = matching[start : start + min(max_results, self.page_size)]
        if not page:
            return 200, {"meta": {"result_count": 0}}
        meta: dict[str, Any] = {
            "newest_id": page[0]["id"],
            "oldest_id": page[-1]["id"],
            "result_count": len(page),
        }
        if start + len(page) < len(matching):
            meta["next_token"] = _make_token(int(matching[start + len(page)]["id"]))
        body: dict[str, Any] = {"data": [_tweet_view(t, params) for t in page], "meta": meta}
        if "author_id" in params.get("expansions", "").split(","):
            authors = list(dict.fromkeys(t["author_id"] for t in page))
            body["includes"] = {
                "users": [_user_view(users[a], params) for a in authors if a not in hidden]
            }
        return 200, body

    def rate_limit_headers(self) -> dict[str, str]:
        """x-rate-limit-* headers of a successful search response."""
        with self._lock:
            self._state.rate_remaining = max(self._state.rate_remaining - 1, 1)
            remaining = self._state.rate_remaining
        return {
            "x-rate-limit-limit": "450",
            "x-rate-limit-remaining": str(remaining),
            "x-rate-limit-reset": str(int(time.time()) + 900),
        }

    def rules_response(
        self, method: str, params: dict[str, str], body: Any
    ) -> tuple[int, dict[str, Any]]:
        """Status and body of GET or POST /2/tweets/search/stream/rules."""
        sent = api_time(datetime.now(UTC))
        with self._lock:
            if method == "GET":
                wanted = set(params["ids"].split(",")) if params.get("ids") else None
                rules = [
                    r for r in self._state.rules.values() if wanted is None or r["id"] in wanted
                ]
                out: dict[str, Any] = {"meta": {"sent": sent, "result_count": len(rules)}}
                if rules:
                    out["data"] = rules
                return 200, out
            if not isinstance(body, dict) or not ({"add", "delete"} & set(body)):
                return 400, _invalid_request("body", json.dumps(body), "needs add or delete")
            if "delete" in body:
                return 200, self._delete_rules_locked(body["delete"].get("ids", []), sent)
            return 200, self._add_rules_locked(body["add"], sent)

    def _add_rules_locked(self, add: list[dict[str, str]], sent: str) -> dict[str, Any]:
        created, errors = [], []
        existing = {r["value"] for r in self._state.rules.values()}
        for item in add:
            if item["value"] in existing:
                duplicate = next(
                    r for r in self._state.rules.values() if r["value"] == item["value"]
                )
                errors.append(
                    {
                        "value": item["value"],
                        "id": duplicate["id"],
                        "title": "DuplicateRule",
                        "type": "https://api.twitter.com/2/problems/duplicate-rules",
                    }
                )
                continue
            created.append(self._add_rule_locked(item["value"], item.get("tag")))
            existing.add(item["value"])
        out: dict[str, Any] = {
            "meta": {
                "sent": sent,
                "summary": {
                    "created": len(created),
                    "not_created": len(errors),
                    "valid": len(created),
                    "invalid": 0,
                },
            }
        }
        if created:
            out["data"] = created
        if errors:
            out["errors"] = errors
        return out

    def _delete_rules_locked(self, ids: list[str], sent: str) -> dict[str, Any]:
        deleted = [rule_id for rule_id in ids if self._state.rules.pop(rule_id, None)]
        errors = [
            {"title": "NotFound", "detail": f"rule {rule_id} not found", "id": rule_id}
            for rule_id in ids
            if rule_id not in deleted
        ]
        out: dict[str, Any] = {
            "meta": {
                "sent": sent,
                "summary": {"deleted": len(deleted), "not_deleted": len(ids) - len(deleted)},
            }
        }
        if errors:
            out["errors"] = errors
        return out

    def next_stream_line(self, params: dict[str, str]) -> bytes | None:
        """The next line of the filtered stream, or None when there is nothing to send."""
        with self._lock:
            state = self._state
            if not state.rules:
                return None
            available = (
                state.tweets if state.stream_limit is None else state.tweets[: state.stream_limit]
            )
            if state.stream_position >= len(available):
                return None
            tweet = available[state.stream_position]
            state.stream_position += 1
            rule = next(iter(state.rules.values()))
            author = next(u for u in state.users if u["id"] == tweet["author_id"])
            hidden = author["id"] in state.hidden_users
        line: dict[str, Any] = {
            "data": _tweet_view(tweet, params),
            "matching_rules": [{"id": rule["id"], "tag": rule.get("tag", "")}],
        }
        if "author_id" in params.get("expansions", "").split(",") and not hidden:
            line["includes"] = {"users": [_user_view(author, params)]}
        return json.dumps(line).encode()

    def open_stream(self) -> int | None:
        """Count a new stream connection, rewind after a drop; return its drop-after count."""
        with self._lock:
            state = self._state
            state.stream_connections += 1
            state.stream_position = max(state.stream_position - state.stream_rewind, 0)
            state.stream_rewind = 0
            return state.stream_drops.pop(0) if state.stream_drops else None

    def stream_dropped(self) -> None:
        """Remember that the connection dropped, so the next one replays a few tweets."""
        with self._lock:
            self._state.stream_rewind = self.stream_replay

    @property
    def stopping(self) -> threading.Event:
        """Set once the server is shutting down; open streams end when they see it."""
        return self._stopping


class _Handler(BaseHTTPRequestHandler):
    api: FakeXApi
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request stderr line."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        body = self._read_body()
        authorized = self.headers.get("Authorization") == f"Bearer {self.api.token}"
        headers = {k: v for k, v in self.headers.items() if k.lower() != "authorization"}
        record = RecordedRequest(
            method=method,
            path=url.path,
            params=params,
            headers=headers,
            body=body,
            authorized=authorized,
            at=time.time(),
        )
        self.api._record(record)
        endpoint = next((name for name, path in ENDPOINTS.items() if path == url.path), None)
        if endpoint is None or (endpoint in ("search", "stream") and method != "GET"):
            self._send_json(
                record,
                404,
                {
                    "title": "Not Found Error",
                    "type": "about:blank",
                    "status": 404,
                    "detail": f"{url.path} not found",
                },
            )
            return
        if not authorized:
            self._send_problem(record, 401)
            return
        fault = self.api._take_fault(endpoint)
        if fault is not None:
            record.fault = fault
            self._send_fault(record, fault)
            return
        if endpoint == "search":
            status, payload = self.api.search_page(params)
            extra = self.api.rate_limit_headers() if status == 200 else {}
            self._send_json(record, status, payload, extra)
        elif endpoint == "rules":
            status, payload = self.api.rules_response(method, params, body)
            self._send_json(record, status, payload)
        else:
            self._stream(record, params)

    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return None
        raw = self.rfile.read(length)
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", errors="replace")

    def _send_json(
        self,
        record: RecordedRequest,
        status: int,
        payload: Any,
        headers: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps(payload).encode()
        record.status = status
        record.response_headers = dict(headers or {})
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_problem(
        self, record: RecordedRequest, status: int, headers: dict[str, str] | None = None
    ) -> None:
        phrase = HTTPStatus(status).phrase
        self._send_json(
            record,
            status,
            {"title": phrase, "detail": phrase, "type": "about:blank", "status": status},
            headers,
        )

    def _send_fault(self, record: RecordedRequest, fault: str) -> None:
        if fault == "429":
            self._send_problem(
                record,
                429,
                {
                    "x-rate-limit-limit": "450",
                    "x-rate-limit-remaining": "0",
                    "x-rate-limit-reset": str(int(time.time()) + 1),
                },
            )
        elif fault == "drop":
            self._drop_mid_body(record)
        elif fault == "html":
            self._send_html(record)
        else:
            self._send_problem(record, int(fault))

    def _send_html(self, record: RecordedRequest) -> None:
        """200 with an HTML page, as a captive portal or a misrouted proxy answers."""
        data = b"<!DOCTYPE html><html><body><h1>Sign in to the network</h1></body></html>"
        record.status = 200
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _drop_mid_body(self, record: RecordedRequest) -> None:
        data = json.dumps({"data": [{"id": "1", "text": "cut"}] * 40}).encode()
        record.status = 200
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self._hang_up()

    def _hang_up(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _stream(self, record: RecordedRequest, params: dict[str, str]) -> None:
        drop_after = self.api.open_stream()
        record.status = 200
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sent = 0
        try:
            while not self.api.stopping.is_set():
                self._chunk(b"\r\n")
                self.api._count_keepalive()
                line = self.api.next_stream_line(params)
                if line is None:
                    self.api.stopping.wait(self.api.keepalive_interval)
                    continue
                self._chunk(line + b"\r\n")
                sent += 1
                if drop_after is not None and sent >= drop_after:
                    self.api.stream_dropped()
                    self._hang_up()
                    return
                self.api.stopping.wait(self.api.stream_interval)
            self._chunk(b"")
        except OSError:
            self.close_connection = True  # the client went away

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def _matches(tweet: dict[str, Any], params: dict[str, str]) -> bool:
    tweet_id = int(tweet["id"])
    if "since_id" in params and tweet_id <= int(params["since_id"]):
        return False
    if "until_id" in params and tweet_id >= int(params["until_id"]):
        return False
    created = _parse_time(tweet["created_at"])
    if "start_time" in params and created < _parse_time(params["start_time"]):
        return False
    return not ("end_time" in params and created >= _parse_time(params["end_time"]))


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _make_token(anchor_id: int) -> str:
    # opaque to clients like X's, but anchored on a tweet id so newer tweets do not shift pages
    return f"b26v89c19zqg8o3fo{anchor_id:x}"


def _token_anchor(token: str) -> int | None:
    prefix = "b26v89c19zqg8o3fo"
    if not token.startswith(prefix):
        return None
    try:
        return int(token[len(prefix) :], 16)
    except ValueError:
        return None


def _fields(params: dict[str, str], name: str) -> set[str]:
    return {f for f in params.get(name, "").split(",") if f}


def _tweet_view(tweet: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    wanted = set(DEFAULT_TWEET_FIELDS) | _fields(params, "tweet.fields")
    return {k: v for k, v in tweet.items() if k in wanted}


def _user_view(user: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    wanted = set(DEFAULT_USER_FIELDS) | _fields(params, "user.fields")
    return {k: v for k, v in user.items() if k in wanted}


def _invalid_request(parameter: str, value: str, problem: str) -> dict[str, Any]:
    return {
        "errors": [
            {
                "parameters": {parameter: [value]},
                "message": f"The `{parameter}` query parameter value [{value}] {problem}",
            }
        ],
        "title": "Invalid Request",
        "detail": "One or more parameters to your request was invalid.",
        "type": "https://api.twitter.com/2/problems/invalid-request",
    }
