"""Replacing a snapshot without ever destroying it: build beside it, swap it in, recover.

In mode `replace` the new snapshot is written into staging folders beside the live ones
(`data/raw/.tweets.staging` next to `data/raw/tweets`, and so for manifests and quarantine).
Only a run that finished is swapped in: a journal naming the folders is written (durably), each
live folder is renamed aside (`.tweets.old`) and its staging folder renamed into place, then the
journal and the old folders are removed. Renames of folders are what the filesystem makes atomic,
so the swap of the three folders is made one unit by the journal: a failure inside the process
puts back every folder already renamed before it is raised; a crash between renames leaves the
journal, and the next run settles the swap before anything else (:func:`recover`): forward when
the new snapshot is whole (complete, every folder of it staged or in place), back otherwise.
A run that fails or is killed before the swap never touches the live folders; its staging
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
from dataclasses import dataclass
from pathlib import Path

from tweetops.errors import TweetopsError
from tweetops.markers import read_marker

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
    """Settle a swap a crash interrupted (its journal is there), then drop retired folders.

    The swap is finished forward only when the new snapshot is whole: every folder's new
    version is still in staging or already in place, and the new tweets carry their completion
    marker. Otherwise (a staging folder lost, a journal that cannot be read) it is undone, and
    the last good snapshot is back in place, marked as before.
    """
    journal = journal_path(folders)
    if journal.exists():
        plan = _read_journal(journal)
        if plan is not None and _new_is_whole(plan):
            log.warning("Finishing the snapshot swap an interrupted ingest run started.")
            _swap(plan.folders)
        else:
            log.warning(
                "Undoing the snapshot swap an interrupted ingest run started: its new snapshot "
                "is not whole, so the last good snapshot stays in place."
            )
            _roll_back(plan if plan is not None else _SwapPlan(tuple(folders), None))
        journal.unlink()
        _sync_folder(journal.parent)
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
    """Make the staging folders the live ones, all of them or none.

    The tweets folder (`folders[0]`, the one readers check for the completion marker) moves
    last, so until it does a reader still sees the complete old snapshot. A journal naming the
    folders (and which of them had a live version) is written durably first; a failure inside
    this process undoes the renames already made at once and is raised as one sentence, and a
    crash is settled by the next run's :func:`recover`.
    """
    plan = _SwapPlan(tuple(folders), tuple(folder.exists() for folder in folders))
    journal = journal_path(folders)
    try:
        _write_journal(journal, plan)
        _swap(folders)
    except BaseException as exc:
        if journal.exists():
            try:
                _roll_back(plan)
                journal.unlink()
                _sync_folder(journal.parent)
            except OSError as undo:
                raise TweetopsError(
                    f"The new snapshot could not be swapped in ({exc}), nor the renames undone "
                    f"now ({undo.strerror or undo}): fix the storage, then run `tweetops ingest` "
                    f"again, which settles the swap from its journal {journal} before anything "
                    f"else."
                ) from None
        if isinstance(exc, OSError):
            raise TweetopsError(
                f"The new snapshot could not be swapped in ({exc.strerror or exc}: "
                f"{exc.filename}), so every renamed folder was put back and {folders[0]} is the "
                f"last good snapshot, as it was: fix the storage and run `tweetops ingest` again."
            ) from None
        raise
    journal.unlink()
    _sync_folder(journal.parent)
    for folder in folders:
        shutil.rmtree(retired_dir(folder), ignore_errors=True)


def _write_journal(journal: Path, plan: _SwapPlan) -> None:
    partial = journal.with_name(f"{journal.name}.tmp")
    try:
        with partial.open("w", encoding="utf-8") as handle:
            json.dump(
                {"folders": [str(f) for f in plan.folders], "had_live": plan.had_live}, handle
            )
            handle.flush()
            os.fsync(handle.fileno())
        _move(partial, journal)
    finally:
        partial.unlink(missing_ok=True)


@dataclass(frozen=True)
class _SwapPlan:
    """The folders of one swap, and which had a live version before it (None: not known)."""

    folders: tuple[Path, ...]
    had_live: tuple[bool, ...] | None


def _read_journal(journal: Path) -> _SwapPlan | None:
    try:
        data = json.loads(journal.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(data, list):  # the journal of an earlier version: the folders only
        return _SwapPlan(tuple(Path(name) for name in data), None)
    if not isinstance(data, dict) or not isinstance(data.get("folders"), list):
        return None
    folders = tuple(Path(name) for name in data["folders"])
    had_live = data.get("had_live")
    if not isinstance(had_live, list) or len(had_live) != len(folders):
        return _SwapPlan(folders, None)
    return _SwapPlan(folders, tuple(bool(flag) for flag in had_live))


def _moved_in(plan: _SwapPlan, index: int) -> bool:
    """Whether the swap already renamed the new version of `plan.folders[index]` into place."""
    folder = plan.folders[index]
    if staging_dir(folder).exists() or not folder.exists():
        return False
    if retired_dir(folder).exists():
        return True
    # no old version waiting aside: in place only if there was none before the swap
    return plan.had_live is not None and not plan.had_live[index]


def _new_is_whole(plan: _SwapPlan) -> bool:
    for index, folder in enumerate(plan.folders):
        staged = staging_dir(folder)
        new = staged if staged.is_dir() else folder if _moved_in(plan, index) else None
        if new is None or not new.is_dir():
            return False
        if index == 0 and read_marker(new) is None:
            return False
    return True


def _roll_back(plan: _SwapPlan) -> None:
    """Undo the renames of a swap: every live folder as before it, the new ones in staging."""
    for index, folder in enumerate(plan.folders):  # the tweets first: readers check them
        old = retired_dir(folder)
        if _moved_in(plan, index):
            _move(folder, staging_dir(folder))
        if old.exists() and not folder.exists():
            _move(old, folder)


def _swap(folders: Sequence[Path]) -> None:
    # idempotent, so recovery can run it again from any point a crash stopped it at
    for folder in reversed(folders):
        staging = staging_dir(folder)
        if not staging.exists():
            continue  # already swapped in
        old = retired_dir(folder)
        if folder.exists():
            shutil.rmtree(old, ignore_errors=True)
            _move(folder, old)
        _move(staging, folder)


def _move(source: Path, target: Path) -> None:
    """Rename `source` to `target` (atomic on one filesystem), durably: the folder is synced."""
    os.replace(source, target)
    _sync_folder(target.parent)


def _sync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
