"""One run at a time per data folder: a lock file outside the data, waited for with one line.

Two ingests of one snapshot, or two features jobs on one checkpoint, would each read what the
other is writing; :func:`exclusive` makes the second wait for the first, and refuse in one
sentence, having changed nothing, when the first holds the lock longer than `LOCK_WAIT_S`. The
lock file sits in the system's temporary folder (keyed on the folder's real path), never among
the folders DVC hashes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from tweetops.errors import TweetopsError

log = logging.getLogger(__name__)

LOCK_WAIT_S = 900.0  # how long a run waits for another one of the same folder


def lock_path(step: str, folder: Path) -> Path:
    """The lock file of `step` runs on `folder`."""
    key = hashlib.sha256(os.path.realpath(folder).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"tweetops-{step}-{key}.lock"


@contextmanager
def exclusive(step: str, folder: Path) -> Iterator[None]:
    """Hold the lock of `step` runs on `folder`, waiting up to LOCK_WAIT_S with one log line."""
    path = lock_path(step, folder)
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.warning(
            "%s: another `tweetops %s` is working on %s (lock %s); this one waits for it "
            "(up to %.0fs)",
            step,
            step,
            folder,
            path,
            LOCK_WAIT_S,
        )
        try:
            lock.acquire(timeout=LOCK_WAIT_S)
        except Timeout:
            raise TweetopsError(
                f"Another `tweetops {step}` held the lock of {folder} ({path}) for "
                f"{LOCK_WAIT_S:.0f}s, so this one changed nothing: wait for it to finish and "
                f"run again."
            ) from None
    try:
        yield
    finally:
        lock.release()
