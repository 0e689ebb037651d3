"""The normalized tweet record every ingest source produces, and its validation.

One JSON object per line: X API v2 tweet fields with the author's user object embedded under
`author`. Every later step (Spark schema included) reads exactly this shape.

    {"id": "1849...", "created_at": "2026-10-01T18:03:12.000Z", "text": "...", "lang": "en",
     "author_id": "1000007919",
     "public_metrics": {"retweet_count": 1, "reply_count": 0, "like_count": 4, "quote_count": 0},
     "entities": {"hashtags": [{"start": 0, "end": 5, "tag": "data"}], "mentions": [], "urls": []},
     "attachments": {"media_keys": ["3_1849..."]},
     "referenced_tweets": [{"type": "quoted", "id": "1848..."}],
     "author": {"id": "1000007919", "username": "ana_data",
                "created_at": "2019-03-02T10:00:00.000Z", "verified": false,
                "public_metrics": {"followers_count": 310, "following_count": 200,
                                   "tweet_count": 5120, "listed_count": 3, "like_count": 900}},
     "fetched_at": "2026-10-02T09:00:00.000Z"}

`fetched_at` is when the source fetched the tweet (its metrics are counts at that time):
search and stream stamp the time of receipt, replay takes twarc2's `__twarc.retrieved_at`
(null when the archive does not say), synthetic the end of its window.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from tweetops.schema import (
    BEFORE_ACCOUNT_REASON,
    MAX_COUNT,
    MAX_ENTITIES,
    MAX_ID_DIGITS,
    MAX_TEXT_CHARS,
    PLATFORM_START,
    before_platform_reason,
    count_reason,
    future_reason,
    id_reason,
)
from tweetops.settings import duration_ms


def format_api_time(value: datetime) -> str:
    """Render a timestamp the way X API v2 does: `2026-10-01T18:03:12.000Z` (UTC)."""
    value = value.astimezone(UTC)
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:"
        f"{value.minute:02d}:{value.second:02d}.{value.microsecond // 1000:03d}Z"
    )


def _require_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp has no timezone")
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("timestamp is out of range in UTC") from exc


# Limits real tweets never reach (a post holds at most 25,000 characters, four media, a few
# references; ids and counts as the API defines them, tweetops.schema): a record beyond them is
# broken or hostile and is quarantined here, at ingest, with the limit as its reason, rather than
# failing a later step in a way that hides why.
MAX_MEDIA = 100
MAX_REFERENCES = 10
PLATFORM_START_TIME = datetime.fromisoformat(PLATFORM_START.replace("Z", "+00:00"))

ApiTime = Annotated[datetime, PlainSerializer(format_api_time, return_type=str)]


def _id_fits_a_long(value: str) -> str:
    if int(value) > MAX_COUNT:
        raise ValueError("id above 2^63-1")
    return value


TweetId = Annotated[
    str,
    StringConstraints(pattern=rf"^[0-9]{{1,{MAX_ID_DIGITS}}}$"),
    AfterValidator(_id_fits_a_long),
]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]


class _Strict(BaseModel):
    # ignore unknown fields from the API (it grows); never coerce "12" into 12 silently
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class UserMetrics(_Strict):
    followers_count: Count
    following_count: Count
    tweet_count: Count
    listed_count: Count
    like_count: Count = 0


class Author(_Strict):
    id: TweetId
    username: Annotated[str, StringConstraints(min_length=1, max_length=50)]
    created_at: ApiTime
    verified: bool = False
    public_metrics: UserMetrics

    @field_validator("created_at", mode="before")
    @classmethod
    def _created_at_in_utc(cls, value: Any) -> Any:
        return _parse_time(value)


class TweetMetrics(_Strict):
    retweet_count: Count
    reply_count: Count
    like_count: Count
    quote_count: Count = 0


class Hashtag(_Lenient):
    start: int
    end: int
    tag: str


class Mention(_Lenient):
    start: int
    end: int
    username: str


class Url(_Lenient):
    start: int
    end: int
    url: str
    expanded_url: str | None = None


class Entities(_Lenient):
    hashtags: list[Hashtag] = Field(default_factory=list, max_length=MAX_ENTITIES)
    mentions: list[Mention] = Field(default_factory=list, max_length=MAX_ENTITIES)
    urls: list[Url] = Field(default_factory=list, max_length=MAX_ENTITIES)


class Attachments(_Lenient):
    media_keys: list[str] = Field(default_factory=list, max_length=MAX_MEDIA)


class ReferencedTweet(_Strict):
    type: Literal["retweeted", "quoted", "replied_to"]
    id: TweetId


class TweetRecord(_Strict):
    """One normalized tweet with its author embedded."""

    id: TweetId
    created_at: ApiTime
    text: Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)]
    lang: Annotated[str, StringConstraints(min_length=1, max_length=8)] = "und"
    author_id: TweetId
    public_metrics: TweetMetrics
    entities: Entities = Field(default_factory=Entities)
    attachments: Attachments = Field(default_factory=Attachments)
    referenced_tweets: list[ReferencedTweet] = Field(
        default_factory=list, max_length=MAX_REFERENCES
    )
    author: Author
    # when the source fetched the tweet, so its engagement counts mean something: null when
    # the source does not say (a replayed archive without twarc2's `retrieved_at`)
    fetched_at: ApiTime | None = None

    @field_validator("created_at", "fetched_at", mode="before")
    @classmethod
    def _created_at_in_utc(cls, value: Any) -> Any:
        return _parse_time(value)

    @model_validator(mode="after")
    def _author_matches(self) -> TweetRecord:
        if self.author.id != self.author_id:
            raise ValueError(f"author.id {self.author.id} differs from author_id {self.author_id}")
        return self


def _parse_time(value: Any) -> Any:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValueError(f"{value!r} is not an ISO-8601 timestamp") from exc
        return _require_utc(parsed)
    if isinstance(value, datetime):
        return _require_utc(value)
    return value


def users_by_id(includes: Any) -> dict[str, dict[str, Any]]:
    """The user objects of an X API v2 `includes` block, by id (malformed entries left out)."""
    users = includes.get("users") if type(includes) is dict else None
    if type(users) is not list:
        return {}
    return {
        user["id"]: user for user in users if type(user) is dict and type(user.get("id")) is str
    }


def with_author(tweet: dict[str, Any], users: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """An X API v2 tweet with its author from `users` embedded under `author`.

    A tweet whose author is not in `users` comes back as it is, so validation sets it aside
    ("record has no embedded author") instead of it vanishing.
    """
    author_id = tweet.get("author_id")
    if "author" in tweet or type(author_id) is not str or author_id not in users:
        return tweet
    return {**tweet, "author": users[author_id]}


class InvalidRecord(ValueError):
    """A record that does not fit the normalized schema; `reason` says why in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def validate_record(
    candidate: Any, *, now: datetime | None = None, max_clock_skew: str | None = None
) -> dict[str, Any]:
    """Validate one candidate record and return it in canonical JSON-ready form.

    Besides the schema, its times must be possible: not before the platform existed, not before
    the author's account, and (given `now` and `max_clock_skew`, a duration such as `1 hour`)
    not later than `now` plus the skew. Raises :class:`InvalidRecord` with a one-line reason for
    anything that does not fit.
    """
    if not isinstance(candidate, dict):
        raise InvalidRecord(f"record is a JSON {type(candidate).__name__}, not an object")
    if "author" not in candidate or candidate.get("author") is None:
        raise InvalidRecord("record has no embedded author")
    try:
        record = TweetRecord.model_validate(candidate)
    except ValidationError as exc:
        raise InvalidRecord(_reason(exc.errors()[0])) from exc
    problem = _impossible_time(record, now, max_clock_skew)
    if problem:
        raise InvalidRecord(problem)
    return record.model_dump(mode="json")


def _reason(error: Any) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "record"
    field_name = str(error["loc"][-1]) if error["loc"] else ""
    is_id = field_name == "id" or field_name.endswith("_id")
    if is_id and error["type"] in ("string_pattern_mismatch", "value_error"):
        return id_reason(where)
    if field_name.endswith("_count") and error["type"] in ("less_than_equal", "greater_than_equal"):
        return count_reason(where)
    return f"{where}: {error['msg']}"


def _impossible_time(
    record: TweetRecord, now: datetime | None, max_clock_skew: str | None
) -> str | None:
    """Why the record's times cannot be real, or None."""
    if record.created_at < PLATFORM_START_TIME:
        return before_platform_reason("created_at")
    if record.author.created_at < PLATFORM_START_TIME:
        return before_platform_reason("author.created_at")
    if record.created_at < record.author.created_at:
        return BEFORE_ACCOUNT_REASON
    if now is None or max_clock_skew is None:
        return None
    if record.created_at > now + timedelta(milliseconds=duration_ms(max_clock_skew)):
        return future_reason(max_clock_skew)
    return None


_JSON_TYPES = {
    dict: "object",
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type (object, array, string, number, boolean, null)."""
    return _JSON_TYPES.get(type(value), type(value).__name__)


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (its type name when it has none)."""
    return " ".join(str(exc).split()) or type(exc).__name__
