"""Ingest: tweets from a source land as a validated, deduplicated JSONL snapshot under `data/raw`.

Every source yields `(candidate, location)` pairs; one :class:`SnapshotWriter` validates,
deduplicates, quarantines and writes them. Sources live in their own modules and register in
:data:`SOURCES`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from tqdm import tqdm

from tweetops.ingest.snapshot import (
    IngestCounts,
    SnapshotWriter,
    clear_snapshot,
    existing_tweet_ids,
    remove_unsealed_parts,
    write_manifest,
)
from tweetops.ingest.synthetic import SyntheticSpec, generate_tweets
from tweetops.settings import IngestSettings, Settings
from tweetops.tracking import log_data_lineage, step_run

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


@dataclass(frozen=True)
class IngestResult:
    """Outcome of one ingest run."""

    counts: IngestCounts
    files: list[Path]
    manifest_path: Path
    seconds: float


def synthetic_source(settings: IngestSettings) -> SourceBatch:
    """The seeded generator: same seed and sizes, byte-identical part files."""
    spec = SyntheticSpec(seed=settings.seed, n_tweets=settings.n_tweets, n_users=settings.n_users,
                         start_time=settings.synthetic_start_time, days=settings.synthetic_days)
    candidates = ((record, f"synthetic:{index}")
                  for index, record in enumerate(generate_tweets(spec)))
    details = {"seed": spec.seed, "n_tweets": spec.n_tweets, "n_users": spec.n_users,
               "start_time": spec.start_time.isoformat(), "days": spec.days}
    return SourceBatch(f"synthetic-seed{spec.seed}", candidates, details)


def search_source(settings: IngestSettings) -> SourceBatch:
    """X API v2 recent search through tweepy (see :mod:`tweetops.ingest.xapi`)."""
    from tweetops.ingest.xapi import search_source as source

    return source(settings)


def stream_source(settings: IngestSettings) -> SourceBatch:
    """X API v2 filtered stream through tweepy (see :mod:`tweetops.ingest.xapi`)."""
    from tweetops.ingest.xapi import stream_source as source

    return source(settings)


def replay_source(settings: IngestSettings) -> SourceBatch:
    """Archives on disk: twarc2, v2 pages, v1.1 statuses (see :mod:`tweetops.ingest.replay`)."""
    from tweetops.ingest.replay import replay_source as source

    return source(settings)


# Sources that need network libraries or parse archives load lazily: `tweetops ingest` with the
# synthetic default imports nothing it does not use.
SOURCES: dict[str, Callable[[IngestSettings], SourceBatch]] = {
    "synthetic": synthetic_source,
    "search": search_source,
    "stream": stream_source,
    "replay": replay_source,
}


def ingest(settings: Settings) -> IngestResult:
    """Run the configured source and write its batch into the snapshot folder.

    Prints one summary line and logs the counts as metrics of the step's MLflow run.
    """
    with step_run(settings, "ingest", ("ingest",)):
        return _ingest_in_run(settings)


def _ingest_in_run(settings: Settings) -> IngestResult:
    config = settings.ingest
    source = SOURCES[config.source]  # the settings only admit the sources registered here
    started = time.perf_counter()
    batch = source(config)
    if config.mode == "replace" and not batch.resuming:
        clear_snapshot(config.raw_dir, config.manifest_dir, config.quarantine_dir)
    else:
        remove_unsealed_parts(config.raw_dir)
    keep_existing = config.mode == "append" or batch.resuming
    known_ids = existing_tweet_ids(config.raw_dir) if keep_existing else set()
    writer = SnapshotWriter(raw_dir=config.raw_dir, quarantine_dir=config.quarantine_dir,
                            batch_id=batch.batch_id, tweets_per_file=config.tweets_per_file,
                            known_ids=known_ids, on_part_sealed=batch.on_part_sealed)
    try:
        with tqdm(batch.candidates, desc=f"ingest[{config.source}]", unit=" tweets",
                  mininterval=1.0, disable=None) as progress:
            writer.offer_all(progress)
    finally:
        writer.close()
        close = getattr(batch.candidates, "close", None)
        if close is not None:
            close()  # a stream source stops its connection thread now, not at garbage collection
    if batch.on_complete is not None:
        batch.on_complete()
    seconds = time.perf_counter() - started
    manifest_path = write_manifest(config.manifest_dir,
                                   writer.manifest(config.source, batch.details))
    print(writer.counts.summary_line(config.source, seconds), flush=True)
    counts = writer.counts
    mlflow.log_metrics({"ingest_accepted": counts.accepted,
                        "ingest_quarantined": counts.quarantined,
                        "ingest_duplicate": counts.duplicate,
                        "ingest_tweets_per_second": counts.accepted / max(seconds, 1e-9)})
    mlflow.log_artifact(str(manifest_path), artifact_path="ingest")
    log_data_lineage("raw_tweets", config.raw_dir)
    return IngestResult(writer.counts, writer.written_files, manifest_path, seconds)

