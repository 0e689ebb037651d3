"""The ingest step: the configured source's batch lands in the snapshot, in the step's MLflow run.

:func:`collect` is the core (a source batch in, part files, quarantine and manifest out, nothing
logged); :func:`ingest` is the step. Sources that need network libraries or parse archives load
lazily, so `tweetops ingest` with the synthetic default imports nothing it does not use.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlflow
from tqdm import tqdm

from tweetops.errors import TweetopsError
from tweetops.ingest import staging
from tweetops.ingest.snapshot import (
    IngestCounts,
    SnapshotWriter,
    existing_tweet_ids,
    remove_unsealed_parts,
    write_manifest,
)
from tweetops.ingest.source_batch import SourceBatch
from tweetops.ingest.synthetic import SyntheticSpec, generate_tweets
from tweetops.locks import exclusive
from tweetops.markers import clear_marker, mark_complete
from tweetops.runner import StepRun, run_step
from tweetops.settings import IngestSettings, Settings


@dataclass(frozen=True)
class IngestResult:
    """Outcome of one ingest run."""

    source: str
    counts: IngestCounts
    files: list[Path]
    manifest_path: Path
    seconds: float

    def logged_metrics(self) -> dict[str, float]:
        """Accepted, quarantined and duplicate counts, and throughput."""
        counts = self.counts
        return {
            "ingest_accepted": counts.accepted,
            "ingest_quarantined": counts.quarantined,
            "ingest_duplicate": counts.duplicate,
            "ingest_tweets_per_second": counts.accepted / max(self.seconds, 1e-9),
        }

    def summary(self) -> str:
        """The one line printed at the end of an ingest run."""
        return self.counts.summary_line(self.source, self.seconds)


def synthetic_source(settings: IngestSettings) -> SourceBatch:
    """The seeded generator: same seed and sizes, byte-identical part files."""
    spec = SyntheticSpec(
        seed=settings.seed,
        n_tweets=settings.n_tweets,
        n_users=settings.n_users,
        start_time=settings.synthetic_start_time,
        days=settings.synthetic_days,
    )
    candidates = (
        (record, f"synthetic:{index}") for index, record in enumerate(generate_tweets(spec))
    )
    details = {
        "seed": spec.seed,
        "n_tweets": spec.n_tweets,
        "n_users": spec.n_users,
        "start_time": spec.start_time.isoformat(),
        "days": spec.days,
    }
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


SOURCES: dict[str, Callable[[IngestSettings], SourceBatch]] = {
    "synthetic": synthetic_source,
    "search": search_source,
    "stream": stream_source,
    "replay": replay_source,
}


def collect(config: IngestSettings, batch: SourceBatch) -> IngestResult:
    """Write `batch` into the snapshot: validated, deduplicated, in bounded part files.

    Mode `replace` builds the new snapshot in staging folders beside the live one and swaps it
    in only once the source finished with at least one tweet (none is an error unless
    `ingest.allow_empty`); a failed or killed run leaves the live snapshot as it was. A batch
    that resumes a stopped replace run continues in that run's staging folders. Mode `append`
    writes into the live snapshot and drops tweets already in it as duplicates; its completion
    marker is cleared when the first new part file appears and written again at the end. One
    ingest at a time writes the snapshot: a second one
    waits for the first (:func:`~tweetops.locks.exclusive`).
    """
    with exclusive("ingest", config.raw_dir):
        return _collect(config, batch)


def _collect(config: IngestSettings, batch: SourceBatch) -> IngestResult:
    started = time.perf_counter()
    named = (config.raw_dir, config.manifest_dir, config.quarantine_dir)
    live = staging.live_folders(named)
    staging.recover(live)
    replace = config.mode == "replace"
    if replace:
        staging.check_swappable(named, live)
        if not batch.resuming:
            staging.discard_staging(live)
            staging.abandon_stopped_collections(config.checkpoint_dir)
        raw_dir, manifest_dir, quarantine_dir = (staging.staging_dir(f) for f in live)
        for folder in (raw_dir, manifest_dir, quarantine_dir):
            folder.mkdir(parents=True, exist_ok=True)
    else:
        raw_dir, manifest_dir, quarantine_dir = live
        raw_dir.mkdir(parents=True, exist_ok=True)
    remove_unsealed_parts(raw_dir)
    keep_existing = not replace or batch.resuming
    known_ids = existing_tweet_ids(raw_dir) if keep_existing else set()
    writer = SnapshotWriter(
        raw_dir=raw_dir,
        quarantine_dir=quarantine_dir,
        batch_id=batch.batch_id,
        tweets_per_file=config.tweets_per_file,
        known_ids=known_ids,
        on_part_sealed=batch.on_part_sealed,
        # an append makes the snapshot incomplete from its first new part file until it is
        # marked again; a source that fails before that leaves it as it was, still marked
        before_part_sealed=None if replace else lambda: clear_marker(raw_dir),
        max_clock_skew=config.max_clock_skew,
    )
    try:
        with tqdm(
            batch.candidates,
            desc=f"ingest[{config.source}]",
            unit=" tweets",
            mininterval=1.0,
            disable=None,
        ) as progress:
            writer.offer_all(progress)
    finally:
        writer.close()
        close = getattr(batch.candidates, "close", None)
        if close is not None:
            close()  # a stream source stops its connection thread now, not at garbage collection
    if batch.on_complete is not None:
        batch.on_complete()
    tweets = len(writer.known_ids)
    if replace and tweets == 0 and not config.allow_empty:
        raise TweetopsError(
            f"ingest[{config.source}] accepted no tweets ({writer.counts.quarantined} "
            f"quarantined, {writer.counts.duplicate} duplicate), so the snapshot in "
            f"{config.raw_dir} was kept as it was: see {quarantine_dir} for the rejected records, "
            f"or pass -S ingest.allow_empty=true to replace it with an empty snapshot."
        )
    manifest_path = write_manifest(manifest_dir, writer.manifest(config.source, batch.details))
    counts = writer.counts
    mark_complete(
        raw_dir,
        "ingest",
        {
            "tweets": tweets,
            "accepted": counts.accepted,
            "quarantined": counts.quarantined,
            "duplicate": counts.duplicate,
        },
    )
    if replace:
        staging.swap_in(live)
        manifest_path = config.manifest_dir / manifest_path.name
        files = [config.raw_dir / path.name for path in writer.written_files]
    else:
        files = writer.written_files
    return IngestResult(config.source, counts, files, manifest_path, time.perf_counter() - started)


def ingest(settings: Settings) -> IngestResult:
    """Run the configured source and write its batch into the snapshot folder.

    Logs one summary line and the counts as metrics of the step's MLflow run, with the
    manifest as an artifact and the DVC hash of the snapshot.
    """
    config = settings.ingest

    def core(run: StepRun) -> IngestResult:
        # the settings only admit the sources registered here
        return collect(config, SOURCES[config.source](config))

    def publish(result: IngestResult, run: StepRun) -> IngestResult:
        mlflow.log_artifact(str(result.manifest_path), artifact_path="ingest")
        return result

    return run_step(
        settings,
        "ingest",
        ("ingest",),
        core,
        publish=publish,
        inputs={"raw_tweets": config.raw_dir},
    )
