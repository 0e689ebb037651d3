"""Writing a snapshot: bounded JSONL part files, a quarantine, and a manifest.

Every source hands candidate records to one :class:`SnapshotWriter`. It validates each against
the normalized schema, drops duplicates by tweet id (within the run and against tweets already
in the snapshot folder), sets malformed ones aside in the quarantine with their location and
reason (bytes that are not UTF-8 kept as base64 beside a readable preview), and rolls part
files at `tweets_per_file`. A part file appears under its final name only
once complete (written as a dot-file, then renamed), so a streaming reader never sees half a file.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from tweetops.ingest.record import InvalidRecord, validate_record
from tweetops.schema import SPARK_JSON_MAX_STRING
from tweetops.versions import tool_versions

log = logging.getLogger(__name__)

PART_SUFFIX = ".jsonl"
_BOM = b"\xef\xbb\xbf"
# the first JSON value of a text, whatever follows it (orjson refuses trailing bytes)
_FIRST_VALUE = json.JSONDecoder()


@dataclass
class IngestCounts:
    """What happened to the candidate records of one ingest run."""

    accepted: int = 0
    quarantined: int = 0
    duplicate: int = 0

    def summary_line(self, source: str, seconds: float) -> str:
        """The one line printed at the end of an ingest run."""
        rate = self.accepted / seconds if seconds > 0 else 0.0
        return (
            f"ingest[{source}]: {self.accepted} accepted, {self.quarantined} quarantined, "
            f"{self.duplicate} duplicate ({rate:,.0f} tweets/s)"
        )


@dataclass(frozen=True)
class Rejected:
    """A candidate its source already knows is malformed (e.g. a line that is not JSON)."""

    raw: Any
    reason: str


@dataclass
class _Range:
    min_id: int | None = None
    max_id: int | None = None
    min_created_at: str | None = None
    max_created_at: str | None = None

    def add(self, tweet_id: int, created_at: str) -> None:
        self.min_id = tweet_id if self.min_id is None else min(self.min_id, tweet_id)
        self.max_id = tweet_id if self.max_id is None else max(self.max_id, tweet_id)
        # API timestamps share one fixed-width format, so text order is time order
        if self.min_created_at is None or created_at < self.min_created_at:
            self.min_created_at = created_at
        if self.max_created_at is None or created_at > self.max_created_at:
            self.max_created_at = created_at


def part_files(raw_dir: Path) -> list[Path]:
    """The complete part files of a snapshot folder, in name order."""
    if not raw_dir.exists():
        return []
    return sorted(
        p
        for p in raw_dir.iterdir()
        if p.is_file() and p.suffix == PART_SUFFIX and not p.name.startswith((".", "_"))
    )


def iter_part_records(
    raw_dir: Path, unreadable: Callable[[Path, int], None] | None = None
) -> Iterator[dict[str, Any]]:
    """Every record of every part file in `raw_dir`, read as features read them.

    A line that is not a JSON object with a string `id` (a part file damaged or dropped in by
    hand; features reject such a line too) is skipped and reported to `unreadable` with its
    file and line number.
    """
    for path in part_files(raw_dir):
        with path.open("rb") as handle:
            for number, line in enumerate(_lines(handle), start=1):
                if not line.strip():
                    continue
                record = read_part_line(line)
                if isinstance(record, dict) and isinstance(record.get("id"), str):
                    yield record
                elif unreadable is not None:
                    unreadable(path, number)


def _lines(handle: IO[bytes], chunk: int = 1 << 20) -> Iterator[bytes]:
    """The lines of a file as Spark's reader splits them: at `\\n`, `\\r\\n` or a lone `\\r`."""
    carry = b""
    while block := handle.read(chunk):
        pieces = (carry + block).splitlines(keepends=True)
        carry = pieces.pop()  # maybe cut short, or a `\\r` whose `\\n` is in the next block
        yield from pieces
    if carry:
        yield carry


def read_part_line(line: bytes) -> Any:
    """The JSON value of one part-file line as Spark's JSON reader (features) reads it, or None.

    Spark skips a UTF-8 byte order mark at the start of a line and reads the first value of
    the line, whatever follows it; it refuses bytes that are not UTF-8 and raw control
    characters (a NUL) inside the value, as orjson does, and strings longer than
    :data:`~tweetops.schema.SPARK_JSON_MAX_STRING` characters.
    """
    line = line.removeprefix(_BOM)
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        try:
            text = line.decode("utf-8").lstrip()
            value = _FIRST_VALUE.raw_decode(text)[0] if text else None
        except (UnicodeDecodeError, ValueError):
            return None
    if len(line) > SPARK_JSON_MAX_STRING and _longest_string(value) > SPARK_JSON_MAX_STRING:
        return None
    return value


def _longest_string(value: Any) -> int:
    """The length of the longest string (key or value) anywhere in a JSON value."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return max((max(len(k), _longest_string(v)) for k, v in value.items()), default=0)
    if isinstance(value, list):
        return max((_longest_string(v) for v in value), default=0)
    return 0


def existing_tweet_ids(raw_dir: Path) -> set[str]:
    """Ids already in the snapshot folder, so an appended batch never repeats a tweet.

    Unreadable lines are left where they are and named in one warning per file.
    """
    damaged: dict[Path, list[int]] = {}
    ids = {
        record["id"]
        for record in iter_part_records(
            raw_dir, lambda path, number: damaged.setdefault(path, []).append(number)
        )
    }
    for path, numbers in damaged.items():
        log.warning(
            "ingest: %s has %d unreadable line(s) (first: line %d), not JSON objects with an id; "
            "they stay as they are, and features set them aside as rejected",
            path,
            len(numbers),
            numbers[0],
        )
    return ids


@dataclass
class SnapshotWriter:
    """Validates, deduplicates and writes one batch of tweets into `raw_dir`."""

    raw_dir: Path
    quarantine_dir: Path
    batch_id: str
    tweets_per_file: int
    known_ids: set[str] = field(default_factory=set)
    counts: IngestCounts = field(default_factory=IngestCounts)
    written_files: list[Path] = field(default_factory=list)
    on_part_sealed: Callable[[Path], None] | None = None
    # called before each part file appears under its final name (an append unmarks the snapshot)
    before_part_sealed: Callable[[], None] | None = None
    # a tweet dated later than the wall clock plus this duration is quarantined (None: no bound)
    max_clock_skew: str | None = None
    _range: _Range = field(default_factory=_Range)
    _handle: IO[bytes] | None = None
    _tmp_path: Path | None = None
    _in_part: int = 0
    _quarantine: IO[bytes] | None = None

    def __post_init__(self) -> None:
        self.raw_dir.mkdir(parents=True, exist_ok=True)

    def offer(self, candidate: Any, location: str) -> bool:
        """Validate and write one candidate; return True when it was accepted.

        `location` says where the candidate came from (file:line, API page, ...) and is kept
        with it in the quarantine when it is rejected.
        """
        if isinstance(candidate, Rejected):
            self.quarantine(candidate.raw, location, candidate.reason)
            return False
        try:
            record = validate_record(
                candidate, now=datetime.now(UTC), max_clock_skew=self.max_clock_skew
            )
        except InvalidRecord as exc:
            self.quarantine(candidate, location, exc.reason)
            return False
        tweet_id = record["id"]
        if tweet_id in self.known_ids:
            self.counts.duplicate += 1
            return False
        self.known_ids.add(tweet_id)
        self._write(record)
        return True

    def offer_all(self, candidates: Iterable[tuple[Any, str]]) -> None:
        """Offer every `(candidate, location)` pair."""
        for candidate, location in candidates:
            self.offer(candidate, location)

    def quarantine(self, candidate: Any, location: str, reason: str) -> None:
        """Set a malformed candidate aside with where it came from and why it was rejected."""
        if self._quarantine is None:
            self.quarantine_dir.mkdir(parents=True, exist_ok=True)
            self._quarantine = (self.quarantine_dir / f"{self.batch_id}{PART_SUFFIX}").open("wb")
        entry: dict[str, Any] = {
            "batch_id": self.batch_id,
            "location": location,
            "reason": reason,
            "record": candidate,
        }
        if isinstance(candidate, bytes | bytearray):
            raw = bytes(candidate)
            try:
                entry["record"] = raw.decode("utf-8")
            except UnicodeDecodeError:
                # a readable preview, and the bytes as they were (the preview replaces some)
                entry["record"] = raw.decode("utf-8", errors="replace")
                entry["record_base64"] = base64.b64encode(raw).decode("ascii")
        self._quarantine.write(orjson.dumps(entry, default=repr, option=orjson.OPT_APPEND_NEWLINE))
        self.counts.quarantined += 1

    def _write(self, record: dict[str, Any]) -> None:
        if self._handle is None:
            name = self._next_part_name()
            self._tmp_path = self.raw_dir / f".{name}.tmp"
            self._handle = self._tmp_path.open("wb")
        self._handle.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
        self._range.add(int(record["id"]), record["created_at"])
        self.counts.accepted += 1
        self._in_part += 1
        if self._in_part >= self.tweets_per_file:
            self._seal_part()

    def _next_part_name(self) -> str:
        # an appended batch with a repeated id (a rerun) continues after the parts already there
        index = len(self.written_files)
        while True:
            name = f"{self.batch_id}-part-{index:05d}{PART_SUFFIX}"
            if not (self.raw_dir / name).exists():
                return name
            index += 1

    def _seal_part(self) -> None:
        if self._handle is None or self._tmp_path is None:
            return
        # forget the open part before moving it: a signal that lands in between must not make
        # close() (in the caller's finally) seal the same part a second time
        handle, partial = self._handle, self._tmp_path
        self._handle, self._tmp_path, self._in_part = None, None, 0
        handle.close()
        final = self.raw_dir / partial.name[1:].removesuffix(".tmp")
        if self.before_part_sealed is not None:
            self.before_part_sealed()
        os.replace(partial, final)
        self.written_files.append(final)
        if self.on_part_sealed is not None:
            self.on_part_sealed(final)

    def close(self) -> None:
        """Seal the open part file and the quarantine file."""
        self._seal_part()
        if self._quarantine is not None:
            self._quarantine.close()
            self._quarantine = None

    def manifest(self, source: str, details: dict[str, Any]) -> dict[str, Any]:
        """The manifest of this batch: source, counts, id and time range, tool versions."""
        return {
            "batch_id": self.batch_id,
            "source": source,
            "details": details,
            "counts": {
                "accepted": self.counts.accepted,
                "quarantined": self.counts.quarantined,
                "duplicate": self.counts.duplicate,
            },
            "id_range": [_str_or_none(self._range.min_id), _str_or_none(self._range.max_id)],
            "created_at_range": [self._range.min_created_at, self._range.max_created_at],
            "files": [p.name for p in self.written_files],
            "tool_versions": tool_versions(),
        }


def write_manifest(manifest_dir: Path, manifest: dict[str, Any]) -> Path:
    """Write `manifest` as `<batch_id>.json` under `manifest_dir` and return its path."""
    manifest_dir.mkdir(parents=True, exist_ok=True)
    path = manifest_dir / f"{manifest['batch_id']}.json"
    path.write_bytes(
        orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    )
    return path


def remove_unsealed_parts(raw_dir: Path) -> None:
    """Delete part files a killed run left half-written (dot-files ending in `.tmp`)."""
    if raw_dir.exists():
        for path in raw_dir.glob(".*.tmp"):
            path.unlink()


def _str_or_none(value: int | None) -> str | None:
    return None if value is None else str(value)
