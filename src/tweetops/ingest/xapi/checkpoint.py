"""Resume checkpoints, and the collection base that advances them as part files are sealed.

Each source keeps a checkpoint (`search.json`, `stream.json`) in `ingest.checkpoint_dir`,
advanced only once a part file is sealed, i.e. once its tweets are durable. A run that was
stopped continues from it; a finished search followed by a new one in mode `append` collects
only newer tweets (`since_id`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson

from tweetops.errors import TweetopsError
from tweetops.ingest.source_batch import SourceBatch


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
        return (self.query, self.start_time, self.end_time) == (
            other.query,
            other.start_time,
            other.end_time,
        )


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
        raise TweetopsError(
            f"The ingest checkpoint {path} is unreadable ({exc}); delete it to "
            f"start a fresh collection."
        ) from exc


def save_checkpoint(path: Path, checkpoint: SearchCheckpoint | StreamCheckpoint) -> None:
    """Write `checkpoint` atomically (temporary file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as handle:
        handle.write(orjson.dumps(asdict(checkpoint), option=orjson.OPT_INDENT_2) + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class Collection:
    """One run of a source: the tweets handed out so far, and the checkpoint behind them.

    Search and stream share it: a subclass names its `source` and yields its `candidates()`;
    the checkpoint moves past the tweets handed out each time a part file is sealed.
    """

    source = ""

    def __init__(
        self,
        checkpoint_path: Path,
        state: SearchCheckpoint | StreamCheckpoint,
        details: dict[str, Any],
    ) -> None:
        self.path = checkpoint_path
        self.state = state
        self.collected_before = state.collected
        self.details = {
            **details,
            "collected_before": state.collected,
            "resumed": False,
            "resumed_from": None,
        }
        self._seen: set[str] = set()
        self._newest: str | None = None

    def candidates(self) -> Iterator[tuple[Any, str]]:
        """`(candidate, location)` pairs for the snapshot writer."""
        raise NotImplementedError

    def batch(self, resumed_from: str | None) -> SourceBatch:
        """The SourceBatch of this run; `resumed_from` says where a stopped run continues."""
        if resumed_from is not None:
            self.details["resumed"], self.details["resumed_from"] = True, resumed_from
        return SourceBatch(
            batch_id=_batch_id(self.source, self.state.batch_seq),
            candidates=self.candidates(),
            details=self.details,
            on_part_sealed=self.on_part_sealed,
            on_complete=self.on_complete,
            resuming=resumed_from is not None,
        )

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


def _batch_id(source: str, seq: int) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{source}-{stamp}-{seq:04d}"


def _max_id(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a or b
    return a if int(a) >= int(b) else b
