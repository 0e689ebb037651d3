"""What every ingest source hands the snapshot writer: one :class:`SourceBatch`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Candidates = Iterator[tuple[Any, str]]


@dataclass(frozen=True)
class SourceBatch:
    """What a source yields: candidates, a batch id, and details for the manifest.

    `batch_id` names the part files (`<batch_id>-part-00000.jsonl`), so it must be unique per
    run for sources that append. `on_part_sealed` runs after each part file is durably in place
    (a source advances its resume checkpoint there); `on_complete` runs once every candidate
    was written. `resuming` is True when the batch continues a run that was stopped before it
    completed: the snapshot is then kept even in mode `replace`, and tweets already in it are
    dropped as duplicates.
    """

    batch_id: str
    candidates: Candidates
    details: dict[str, Any]
    on_part_sealed: Callable[[Path], None] | None = None
    on_complete: Callable[[], None] | None = None
    resuming: bool = False
