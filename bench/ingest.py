"""Bench: the replay source through the snapshot writer against plain JSON parsing.

    python bench/ingest.py [--tweets 1000000] [--files 10] [--tweets-per-file 5000] [--keep]

Builds a twarc2-flattened JSONL archive once (a few thousand synthetic tweets, repeated with
fresh ids), then times on the same bytes: (1) plain parsing, `orjson.loads` per line; (2) the
replay source alone (read, detect the format, no validation); (3) the replay source through
`SnapshotWriter` (validate, deduplicate, write bounded part files), which is `tweetops ingest`
minus the MLflow run. Prints tweets/s of each, the ratio replay/plain, and the peak RSS of the
process during (3), sampled with psutil. Asserts nothing.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import orjson
import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "src"))
sys.path.insert(0, str(REPO_ROOT))

from tests.support.archives import open_archive, to_twarc2_flat  # noqa: E402
from tweetops.ingest.replay import replay_source  # noqa: E402
from tweetops.ingest.snapshot import SnapshotWriter  # noqa: E402
from tweetops.ingest.synthetic import SyntheticSpec, generate_tweets  # noqa: E402
from tweetops.settings import IngestSettings, load_settings  # noqa: E402

MIB = 1024 * 1024
MAX_COPIES = 800  # a copy's ids add copy * base to the sequence bits, which hold 2**22 values


def build_archive(folder: Path, tweets: int, files: int) -> int:
    """Write `tweets` flattened tweets with unique ids into `files` JSONL files; return bytes."""
    base_size = max(5000, math.ceil(tweets / MAX_COPIES))
    spec = SyntheticSpec(
        seed=1,
        n_tweets=base_size,
        n_users=max(base_size // 5, 10),
        start_time=datetime(2026, 10, 1, tzinfo=UTC),
        days=14,
    )
    base = [to_twarc2_flat(record) for record in generate_tweets(spec)]
    per_file = math.ceil(tweets / files)
    lines = _varied_lines(base, tweets)
    written = 0
    for number in range(files):
        with open_archive(folder / f"search-{number:03d}.jsonl") as handle:
            for _ in range(min(per_file, tweets - number * per_file)):
                line = next(lines)
                handle.write(line)
                written += len(line)
    return written


def _varied_lines(base: list[dict], tweets: int) -> Iterator[bytes]:
    """`tweets` JSON lines: the base tweets again and again, each copy with fresh ids."""
    for index in range(tweets):
        copy, position = divmod(index, len(base))
        tweet = base[position]
        tweet_id = str(int(tweet["id"]) + copy * len(base))
        yield orjson.dumps(
            {
                **tweet,
                "id": tweet_id,
                "conversation_id": tweet_id,
                "edit_history_tweet_ids": [tweet_id],
            },
            option=orjson.OPT_APPEND_NEWLINE,
        )


def plain_parse(folder: Path) -> int:
    """`orjson.loads` on every line of every archive file; return the number of lines."""
    count = 0
    loads = orjson.loads
    for path in sorted(folder.glob("*.jsonl")):
        with path.open("rb", buffering=1 << 20) as handle:
            for line in handle:
                loads(line)
                count += 1
    return count


def replay_only(settings: IngestSettings) -> int:
    """Consume the replay source's candidates without validating or writing them."""
    return sum(1 for _ in replay_source(settings).candidates)


def replay_and_write(settings: IngestSettings) -> int:
    """The replay source through SnapshotWriter, as `tweetops ingest` runs it."""
    batch = replay_source(settings)
    writer = SnapshotWriter(
        raw_dir=settings.raw_dir,
        quarantine_dir=settings.quarantine_dir,
        batch_id=batch.batch_id,
        tweets_per_file=settings.tweets_per_file,
    )
    try:
        writer.offer_all(batch.candidates)
    finally:
        writer.close()
    counts = writer.counts
    if counts.quarantined or counts.duplicate:
        print(f"  note: {counts.quarantined} quarantined, {counts.duplicate} duplicate")
    return counts.accepted


@contextmanager
def peak_rss(interval: float = 0.02) -> Iterator[dict[str, float]]:
    """Sample this process's RSS in a thread; yields a dict filled with `peak` and `start`."""
    process = psutil.Process()
    result = {"start": process.memory_info().rss / MIB, "peak": 0.0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            result["peak"] = max(result["peak"], process.memory_info().rss / MIB)
            stop.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield result
    finally:
        stop.set()
        sampler.join()
        result["peak"] = max(result["peak"], process.memory_info().rss / MIB)


def timed(label: str, run: Callable[[], int]) -> float:
    """Run `run`, print its tweets/s under `label`, and return the rate."""
    started = time.perf_counter()
    count = run()
    seconds = time.perf_counter() - started
    rate = count / seconds
    print(f"{label:<34} {count:>10,} tweets in {seconds:7.2f} s = {rate:>10,.0f} tweets/s")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tweets", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=10, help="archive files to spread them over")
    parser.add_argument(
        "--tweets-per-file",
        type=int,
        default=5000,
        help="part-file size of the snapshot (ingest.tweets_per_file)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="tweetops-bench-ingest-"))
    archive = root / "archive"
    try:
        started = time.perf_counter()
        size = build_archive(archive, args.tweets, args.files)
        print(
            f"archive: {args.tweets:,} tweets in {args.files} twarc2 flattened JSONL files, "
            f"{size / MIB:,.0f} MiB, built in {time.perf_counter() - started:.1f} s ({root})"
        )
        settings = load_settings(
            REPO_ROOT / "params.yaml",
            [
                "ingest.source=replay",
                f"ingest.path={archive}",
                f"ingest.raw_dir={root / 'raw/tweets'}",
                f"ingest.manifest_dir={root / 'raw/man'}",
                f"ingest.quarantine_dir={root / 'raw/quarantine'}",
                f"ingest.tweets_per_file={args.tweets_per_file}",
            ],
        ).ingest

        plain = timed("(1) plain orjson.loads per line", lambda: plain_parse(archive))
        source = timed("(2) replay source alone", lambda: replay_only(settings))
        with peak_rss() as memory:
            full = timed("(3) replay + SnapshotWriter", lambda: replay_and_write(settings))
        parts = len(list(settings.raw_dir.glob("*.jsonl")))
        print(
            f"ratio replay/plain: {full / plain:.2f} (replay source alone: "
            f"{source / plain:.2f}); {parts} part files of {args.tweets_per_file:,} tweets"
        )
        print(
            f"peak RSS during (3): {memory['peak']:,.0f} MiB "
            f"(RSS before it: {memory['start']:,.0f} MiB)"
        )
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
