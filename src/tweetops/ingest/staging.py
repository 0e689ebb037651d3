"""Replacing a snapshot without ever destroying it: build beside it, swap it in, recover.

In mode `replace` the new snapshot is written into staging folders beside the live ones
(`data/raw/.tweets.staging` next to `data/raw/tweets`, and so for manifests and quarantine).
Only a run that finished is swapped in: a journal naming the folders is written (durably), each
live folder is renamed aside (`.tweets.old`) and its staging folder renamed into place, then the
journal and the old folders are removed. Renames of folders are what the filesystem makes atomic;
a crash between them leaves the journal, and the next run finishes the swap before anything
else (:func:`recover`). A failed or killed run never touches the live folders; its staging
folders are continued when the source resumes the stopped run, and otherwise discarded by the
next run together with the stopped collection's checkpoint.

Data folders that are symlinks (a mounted volume linked into `data/raw`) are followed: the swap
renames inside the folder the link names, so the link stays. A folder that is itself a mount
point cannot be renamed, and a parent that cannot be written cannot hold the staging folder: such
a swap is refused in one sentence before anything is written (:func:`check_swappable`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from tweetops.errors import TweetopsError

log = logging.getLogger(__name__)

JOURNAL_NAME = ".ingest-swap.json"


def live_folders(folders: Sequence[Path]) -> tuple[Path, ...]:
    """The folders a swap renames: `folders` with every symlink followed."""
    return tuple(Path(os.path.realpath(folder)) for folder in folders)


def check_swappable(named: Sequence[Path], live: Sequence[Path]) -> None:
    """Refuse, before anything changes, a swap the storage of `live` cannot make by renames.

    `named` are the folders as the settings name them (for the message), `live` the same
    folders with symlinks followed (:func:`live_folders`).
    """
    for setting, folder in zip(named, live, strict=True):
        if folder.exists() and os.path.ismount(folder):
            raise TweetopsError(
                f"{setting} is a mount point ({folder}), which a replace ingest cannot swap by "
                f"renaming: mount the volume one level up (or link a folder inside it) or use "
                f"-S ingest.mode=append."
            )
        parent = folder.parent
        parent.mkdir(parents=True, exist_ok=True)
        if not os.access(parent, os.W_OK | os.X_OK):
            raise TweetopsError(
                f"{parent} cannot be written, so a replace ingest cannot build {setting} beside "
                f"it and swap it in: make it writable or use -S ingest.mode=append."
            )


def staging_dir(folder: Path) -> Path:
    """The staging folder a replace run builds `folder` in."""
    return folder.parent / f".{folder.name}.staging"


def retired_dir(folder: Path) -> Path:
    """Where the live `folder` waits during a swap, until the swap is complete."""
    return folder.parent / f".{folder.name}.old"


def journal_path(folders: Sequence[Path]) -> Path:
    """The swap journal, beside the first folder (the tweets)."""
    return folders[0].parent / JOURNAL_NAME


def recover(folders: Sequence[Path]) -> None:
    """Finish a swap a crash interrupted (its journal is there), then drop retired folders."""
    journal = journal_path(folders)
    if journal.exists():
        try:
            named = [Path(name) for name in json.loads(journal.read_text(encoding="utf-8"))]
        except (OSError, ValueError):
            named = list(folders)
        log.warning("Finishing the snapshot swap an interrupted ingest run started.")
        _swap(named)
        journal.unlink()
    for folder in folders:
        shutil.rmtree(retired_dir(folder), ignore_errors=True)


def discard_staging(folders: Sequence[Path]) -> None:
    """Remove what a failed or killed replace run left in the staging folders."""
    for folder in folders:
        shutil.rmtree(staging_dir(folder), ignore_errors=True)


def abandon_stopped_collections(checkpoint_dir: Path) -> list[Path]:
    """Remove the checkpoints of stopped collections whose tweets were in discarded staging.

    A stopped search or stream resumes from its checkpoint only together with the staging
    folders holding what it collected; once those are discarded, resuming would leave a gap.
    """
    removed = []
    for path in sorted(checkpoint_dir.glob("*.json")) if checkpoint_dir.is_dir() else []:
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(state, dict) and state.get("complete") is False:
            path.unlink()
            removed.append(path)
    return removed


def swap_in(folders: Sequence[Path]) -> None:
    """Make the staging folders the live ones, as atomically as the filesystem allows.

    The tweets folder (`folders[0]`, the one readers check for the completion marker) moves
    last, so until it does a reader still sees the complete old snapshot.
    """
    journal = journal_path(folders)
    partial = journal.with_name(f"{journal.name}.tmp")
    with partial.open("w", encoding="utf-8") as handle:
        handle.write(json.dumps([str(folder) for folder in folders]))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, journal)
    _swap(folders)
    journal.unlink()
    for folder in folders:
        shutil.rmtree(retired_dir(folder), ignore_errors=True)


def _swap(folders: Sequence[Path]) -> None:
    # idempotent, so recovery can run it again from any point a crash stopped it at
    for folder in reversed(folders):
        staging = staging_dir(folder)
        if not staging.exists():
            continue  # already swapped in
        old = retired_dir(folder)
        if folder.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(folder, old)
        os.replace(staging, folder)
