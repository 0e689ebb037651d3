"""Raw snapshots for tests: a few seeded synthetic records, and the bytes of a snapshot on disk."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tweetops.ingest.synthetic import SyntheticSpec, generate_tweets

RAW = Path("data/raw")

RECORDS: list[dict[str, Any]] = list(
    generate_tweets(
        SyntheticSpec(
            seed=5, n_tweets=60, n_users=12, start_time=datetime(2026, 10, 1, tzinfo=UTC), days=2
        )
    )
)


def snapshot_hashes(root: Path = RAW) -> dict[str, str]:
    """sha256 of every file under the snapshot folders (checkpoints are not the snapshot)."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
        and path.relative_to(root).parts[0] in ("tweets", "manifests", "quarantine")
    }
