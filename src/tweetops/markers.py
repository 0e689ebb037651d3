"""All of a step's output or none of it: a completion marker written last, checked by readers.

A step that writes a folder other steps read clears the folder's marker before it writes
(:func:`clear_marker`) and writes it, with the step's name and counts, once everything is in
place (:func:`mark_complete`). A reader calls :func:`require_complete` first: a folder without
the marker is what a killed or failed run left, and is refused with one sentence naming the step
to rerun. The marker's name starts with `_`, so Spark, DVC-tracked readers and the snapshot's
part-file listing never take it for data.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tweetops.errors import TweetopsError

MARKER_NAME = "_COMPLETE.json"


def marker_path(folder: Path) -> Path:
    """Where the completion marker of `folder` lives."""
    return folder / MARKER_NAME


def clear_marker(folder: Path) -> None:
    """Say `folder` is being written: readers refuse it until :func:`mark_complete`."""
    marker_path(folder).unlink(missing_ok=True)


def mark_complete(folder: Path, step: str, counts: Mapping[str, int | float]) -> Path:
    """Write the completion marker of `folder` (atomically, and durably) and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    # no timestamp: the same run writes the same bytes, so DVC hashes stay reproducible
    payload = {"step": step, "counts": dict(counts)}
    path = marker_path(folder)
    partial = folder / f".{MARKER_NAME}.tmp"
    with partial.open("w", encoding="utf-8") as handle:
        handle.write(json.dumps(payload, indent=2, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)
    return path


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The completion marker of `folder`, or None when there is none (or it is unreadable)."""
    try:
        data = json.loads(marker_path(folder).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def require_complete(folder: Path, *, produced_by: str) -> dict[str, Any]:
    """The marker of `folder`; raise TweetopsError when the step that writes it did not finish.

    `produced_by` names the step (`ingest`, `features`) the user should rerun.
    """
    if not folder.is_dir():
        raise TweetopsError(f"{folder} does not exist: run `tweetops {produced_by}` first.")
    marker = read_marker(folder)
    if marker is None:
        raise TweetopsError(
            f"{folder} is incomplete (the last `tweetops {produced_by}` run did "
            f"not finish, so it has no {MARKER_NAME}): rerun "
            f"`tweetops {produced_by}` before this step."
        )
    return marker
