"""Replay archives on disk: twarc2 JSONL, X API v2 response pages, tweepy v1.1 statuses.

`ingest.path` names one archive file or a folder, walked recursively in sorted order (hidden
files and folders, and the snapshot's own output folders, are skipped). Files ending in `.json`,
`.jsonl`, `.ndjson` (optionally `.gz`) are read; the format is detected per record, so a folder
may mix them:

* a v1.1 status (has `id_str` and `user`), as the lecture saves them (`twitter-logs/<id>.json`,
  one status per file) or one per line, is mapped onto the normalized record
  (:mod:`tweetops.ingest.v1`);
* an X API v2 response page (has `data`), also twarc2's raw output, yields its tweets joined
  with `includes.users` by `author_id`;
* a tweet that already carries `author` (twarc2 `flatten`, or a normalized snapshot) or
  `author_id` with `public_metrics` passes through as is.

`.jsonl`/`.ndjson` files are streamed line by line and never held in memory; a `.json` file is
streamed the same way when its first lines are JSON objects on their own lines, and otherwise
parsed as one document (one object, or an array of pages, tweets or statuses).

Nothing is dropped silently: a line that is not JSON or longer than any real one, an empty
file, a value that is not an object, a shape no format explains or a v1.1 status that cannot be
mapped is handed to the snapshot writer as :class:`~tweetops.ingest.snapshot.Rejected`, with
its location (`<file>:<line>`, `<file>` for one-document files, `...:data[<i>]` for a tweet in a
page) and a one-line reason. Everything else the writer validates, deduplicates and writes.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from tweetops.errors import TweetopsError
from tweetops.ingest.record import InvalidRecord, json_type, one_line, users_by_id, with_author
from tweetops.ingest.snapshot import Rejected
from tweetops.ingest.source_batch import SourceBatch
from tweetops.ingest.v1 import status_to_record
from tweetops.settings import IngestSettings

ARCHIVE_SUFFIXES = (".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz")
LINE_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
MAX_RAW_BYTES = 64 * 1024  # how much of an unparseable line or file the quarantine keeps
MAX_LINE_BYTES = 16 * 1024 * 1024  # no tweet or API page of 100 tweets comes near this

_WHITESPACE = b" \t\r\n"  # JSON whitespace; other control bytes make a line malformed, not blank
_BOM = b"\xef\xbb\xbf"
_READ_ERRORS = (OSError, EOFError, zlib.error)

Candidate = tuple[Any, str]
_BROKEN = object()  # what _loads_or returns for bytes that are not JSON


@dataclass
class ReplayStats:
    """What a replay read: files, API pages, and recognized records per format."""

    files_read: int = 0
    pages: int = 0
    formats: dict[str, int] = field(default_factory=dict)

    def count(self, fmt: str) -> None:
        """Count one record recognized as format `fmt`."""
        self.formats[fmt] = self.formats.get(fmt, 0) + 1


def replay_source(settings: IngestSettings) -> SourceBatch:
    """The replay source: every record of the archive file or folder at `settings.path`.

    The returned details are filled in while the candidates are consumed, so the manifest
    (written after the last one) holds the files read and the per-format counts.
    """
    outputs = _output_dirs(settings)
    root = resolve_archive_path(settings.path, outputs)
    files = archive_files(root, excluded=[settings.checkpoint_dir, *outputs.values()])
    stats = ReplayStats()
    details: dict[str, Any] = {
        "path": str(root),
        "files": len(files),
        "files_read": 0,
        "pages": 0,
        "formats": stats.formats,
    }
    batch_id = f"replay-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}"
    return SourceBatch(batch_id, _replay(root, files, stats, details), details)


def _replay(
    root: Path, files: list[Path], stats: ReplayStats, details: dict[str, Any]
) -> Iterator[Candidate]:
    yield from read_archives(root, files, stats)
    details.update(files_read=stats.files_read, pages=stats.pages)


def resolve_archive_path(path: Path | None, outputs: dict[str, Path] | None = None) -> Path:
    """Check `ingest.path` and return it absolute; raise TweetopsError in one sentence.

    `outputs` names the folders the run writes or clears (`ingest.raw_dir`, ...): replaying an
    archive inside one of them would read files the run is deleting or writing.
    """
    if path is None or not str(path).strip():
        raise TweetopsError(
            "Set ingest.path to the archive file or folder to replay, "
            "e.g. -S ingest.path=twitter-logs."
        )
    root = path.expanduser().resolve()
    if not root.exists():
        raise TweetopsError(
            f"ingest.path {path} does not exist; point it at an archive file or folder of tweets."
        )
    for name, output in (outputs or {}).items():
        folder = output.resolve()
        if root == folder or folder in root.parents:
            raise TweetopsError(
                f"ingest.path {path} is inside {name}, which this run writes; "
                f"copy the archive elsewhere and replay the copy."
            )
    return root


def archive_files(root: Path, excluded: Iterable[Path] = ()) -> list[Path]:
    """The archive files under `root` in sorted path order, or `root` itself when it is a file.

    Hidden files and folders, and folders in `excluded` (the snapshot's own output), are skipped.
    Raises TweetopsError when there is nothing to read.
    """
    if root.is_file():
        if not root.name.lower().endswith(ARCHIVE_SUFFIXES):
            raise TweetopsError(
                f"ingest.path {root} is not an archive file; replay reads {_suffix_list()} files."
            )
        return [root]
    skipped = {path.resolve() for path in excluded}
    files: list[Path] = []
    for folder, dirnames, filenames in os.walk(root):
        here = Path(folder)
        dirnames[:] = [
            name
            for name in dirnames
            if not name.startswith(".") and (here / name).resolve() not in skipped
        ]
        files.extend(
            here / name
            for name in filenames
            if not name.startswith(".") and name.lower().endswith(ARCHIVE_SUFFIXES)
        )
    if not files:
        raise TweetopsError(
            f"ingest.path {root} holds no {_suffix_list()} files; point it at a "
            f"folder of tweet archives."
        )
    return sorted(files, key=lambda path: path.relative_to(root).parts)


def read_archives(root: Path, files: Iterable[Path], stats: ReplayStats) -> Iterator[Candidate]:
    """Every candidate of every file, labelled relative to the folder that holds `root`."""
    base = root.parent
    for path in files:
        yield from read_archive_file(path, path.relative_to(base).as_posix(), stats)


def read_archive_file(path: Path, label: str, stats: ReplayStats) -> Iterator[Candidate]:
    """Every candidate of one file; `label` prefixes their locations."""
    try:
        handle = _open(path)
    except OSError as exc:
        yield Rejected(None, f"file could not be opened: {one_line(exc)}"), label
        return
    with handle:
        stats.files_read += 1
        if path.name.lower().endswith(LINE_SUFFIXES) or _looks_line_delimited(handle):
            handle.seek(0)
            yield from parse_lines(handle, label, stats)
            return
        try:
            handle.seek(0)
            data = handle.read()
        except _READ_ERRORS as exc:
            yield Rejected(None, f"file could not be read: {one_line(exc)}"), label
            return
    yield from parse_document(data, label, stats)


def parse_lines(lines: Iterable[bytes], label: str, stats: ReplayStats) -> Iterator[Candidate]:
    """Candidates from JSON Lines, one value per line; blank lines are skipped.

    A line that is not JSON becomes a :class:`Rejected` at `<label>:<line>`; a read error
    (a truncated gzip file, say) ends the file with one :class:`Rejected` at the line it hit.
    """
    lineno = 0
    seen = False
    loads, decode_error, formats = orjson.loads, orjson.JSONDecodeError, stats.formats
    try:
        for lineno, line in enumerate(lines, 1):
            if len(line) > MAX_LINE_BYTES:
                seen = True
                yield Rejected(_preview(line), _too_long(len(line))), f"{label}:{lineno}"
                continue
            try:
                value = loads(line)
            except decode_error as exc:
                if not line.strip(_WHITESPACE):
                    continue
                seen = True
                yield from _broken_line(line, exc, f"{label}:{lineno}", stats)
                continue
            seen = True
            location = f"{label}:{lineno}"
            if type(value) is dict and _shape(value) == "tweet":  # the hot path, inlined
                fmt = "twarc2_flat" if "__twarc" in value else "v2_tweet"
                formats[fmt] = formats.get(fmt, 0) + 1
                yield ({**value, **_retrieved_at(value)} if "__twarc" in value else value), location
            else:
                yield from candidates_from_value(value, location, stats)
    except _READ_ERRORS as exc:
        seen = True
        yield (
            Rejected(None, f"file could not be read from here on: {one_line(exc)}"),
            f"{label}:{lineno + 1}",
        )
    if not seen:
        yield Rejected(None, "file is empty"), label


def _broken_line(
    line: bytes, error: Exception, location: str, stats: ReplayStats
) -> Iterator[Candidate]:
    """A line orjson rejected: retried without a byte-order mark, else rejected with the reason."""
    if line.startswith(_BOM):
        value = _loads_or(line[len(_BOM) :], _BROKEN)
        if value is not _BROKEN:
            yield from candidates_from_value(value, location, stats)
            return
    yield Rejected(_preview(line), f"not valid JSON: {one_line(error)}"), location


def parse_document(data: bytes, label: str, stats: ReplayStats) -> Iterator[Candidate]:
    """Candidates from a file holding one JSON document: an object or an array of them."""
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    if not data.strip(_WHITESPACE):
        yield Rejected(None, "file is empty"), label
        return
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        yield Rejected(_preview(data), f"file is not valid JSON: {one_line(exc)}"), label
        return
    if type(value) is not list:
        yield from candidates_from_value(value, label, stats)
        return
    if not value:
        yield Rejected(value, "file holds an empty JSON array"), label
    for index, item in enumerate(value):
        yield from candidates_from_value(item, f"{label}[{index}]", stats)


def candidates_from_value(value: Any, location: str, stats: ReplayStats) -> Iterator[Candidate]:
    """The candidates one parsed JSON value stands for, whatever its format."""
    if type(value) is not dict:
        yield Rejected(value, f"record is a JSON {json_type(value)}, not an object"), location
        return
    shape = _shape(value)
    if shape == "tweet":
        stats.count("twarc2_flat" if "__twarc" in value else "v2_tweet")
        yield {**value, **_retrieved_at(value)}, location
    elif shape == "v1.1":
        stats.count("v1.1")
        try:
            record = status_to_record(value)
        except InvalidRecord as exc:
            yield Rejected(value, exc.reason), location
            return
        yield record, location
    elif shape == "page":
        yield from page_candidates(value, location, stats)
    elif shape == "empty_page":
        stats.pages += 1
    elif shape == "error_page":
        yield Rejected(value, "page holds API errors and no data"), location
    else:
        yield Rejected(value, "unrecognized record shape"), location


def _shape(value: dict[str, Any]) -> str:
    if "id_str" in value and "user" in value:
        return "v1.1"
    if "data" in value:
        return "page"
    if "author" in value or ("author_id" in value and "public_metrics" in value):
        return "tweet"
    meta = value.get("meta")
    if type(meta) is dict and meta.get("result_count") == 0 and "errors" not in value:
        return "empty_page"  # a search page without results has `meta` and no `data`
    if "errors" in value:
        return "error_page"
    return "unknown"


def page_candidates(page: dict[str, Any], location: str, stats: ReplayStats) -> Iterator[Candidate]:
    """The tweets of one X API v2 response page, each joined with its author from includes.

    A tweet whose author is not in `includes.users` is passed on without `author`, so the writer
    quarantines it ("record has no embedded author").
    """
    data = page["data"]
    tweets = [data] if type(data) is dict else data
    if type(tweets) is not list:
        yield (
            Rejected(page, f"page data is a JSON {json_type(data)}, not a list of tweets"),
            location,
        )
        return
    stats.pages += 1
    fmt = "twarc2_page" if "__twarc" in page else "v2_page"
    users = users_by_id(page.get("includes"))
    for index, tweet in enumerate(tweets):
        where = f"{location}:data[{index}]"
        if type(tweet) is not dict:
            yield Rejected(tweet, f"tweet is a JSON {json_type(tweet)}, not an object"), where
            continue
        stats.count(fmt)
        yield {**with_author(tweet, users), **_retrieved_at(page)}, where


def _retrieved_at(value: dict[str, Any]) -> dict[str, Any]:
    """`fetched_at` from twarc2's `__twarc.retrieved_at`; nothing when the archive has none."""
    twarc = value.get("__twarc")
    if type(twarc) is dict and twarc.get("retrieved_at") is not None:
        return {"fetched_at": twarc["retrieved_at"]}
    return {}


def _open(path: Path) -> BinaryIO | gzip.GzipFile:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rb")
    return path.open("rb", buffering=1 << 20)


def _looks_line_delimited(handle: BinaryIO | gzip.GzipFile) -> bool:
    """True when a `.json` file holds JSON Lines rather than one document.

    JSON Lines: the first non-blank line is a complete JSON value and more lines follow, or a
    broken first line is followed by a complete object. A pretty-printed document starts with
    `{`, `[` or a partial object, and a one-line document has a single line.
    """
    try:
        lines = _first_lines(handle, 2)
    except _READ_ERRORS:
        return False
    if len(lines) < 2:
        return False
    first, second = lines
    if _loads_or(first, _BROKEN) is not _BROKEN:
        return True
    if first.strip(_WHITESPACE) in (b"{", b"["):
        return False
    return type(_loads_or(second, _BROKEN)) is dict


def _first_lines(handle: BinaryIO | gzip.GzipFile, count: int) -> list[bytes]:
    lines: list[bytes] = []
    for line in handle:
        if line.strip(_WHITESPACE):
            lines.append(line.removeprefix(_BOM) if not lines else line)
            if len(lines) == count:
                break
    return lines


def _loads_or(data: bytes, default: Any) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return default


def _output_dirs(settings: IngestSettings) -> dict[str, Path]:
    return {
        "ingest.raw_dir": settings.raw_dir,
        "ingest.manifest_dir": settings.manifest_dir,
        "ingest.quarantine_dir": settings.quarantine_dir,
    }


def _too_long(size: int) -> str:
    return (
        f"line is {size:,} bytes, over the {MAX_LINE_BYTES:,} no tweet or API page reaches "
        f"(its first {MAX_RAW_BYTES:,} bytes are kept)"
    )


def _suffix_list() -> str:
    return ", ".join(ARCHIVE_SUFFIXES)


def _preview(data: bytes) -> bytes:
    return data[:MAX_RAW_BYTES]
