"""The model registry as tweetops uses it: versions, aliases, their history, and rollback.

Every move of the `champion` alias is recorded in the registry itself, so any MLflow client
sees it: as one short sentence per move on the registered model (`tweetops.history.<seq>`, e.g.
`v1 → v2: rmse 0.6531 → 0.6366 on 3051 shared test rows`, what the registry UI lists), as the
full record on the version it moved to (`tweetops.history.<seq>`, one JSON object: when, from
which version to which, why, both scores, the rows compared) and as tags of the versions involved
(`tweetops.champion_since` / `tweetops.champion_until`). :func:`history` reads the full records
back in order, :func:`rollback` moves `champion` to the champion before the current one and
records that as a move too.

A move is written ahead (`tweetops.pending_move` on the registered model, with what it changes
and the values it replaces) and that tag is removed once the move is recorded; a process killed
in between leaves it, and the next promote or rollback undoes the move first
(:func:`settle_interrupted_move`), so the champion is always the one its history names.

Alias moves of one registered model are serialised by :func:`registry_lock`, a file lock keyed on
the tracking store and the model name. It protects promote processes on one machine sharing one
tracking store; processes on different machines writing to one tracking server are not
serialised by it (the registry has no compare-and-set for aliases).
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from tweetops.errors import ACCESS_ERROR_CODES, TweetopsError, access_refused
from tweetops.settings import Settings

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
HISTORY_TAG_PREFIX = "tweetops.history."
# a champion move under way: what to put back if the process dies before the move is recorded
PENDING_MOVE_TAG = "tweetops.pending_move"
_MOVE_TAGS = ("tweetops.champion_since", "tweetops.champion_reason")
TRAIN_RUN_TAG = "tweetops.train_run_id"


@dataclass(frozen=True)
class AliasMove:
    """One move of an alias: when, from which version to which, why, and both scores."""

    at: str
    alias: str
    action: str  # "promote" or "rollback"
    from_version: str | None
    to_version: str
    reason: str
    challenger_rmse: float | None = None
    champion_rmse: float | None = None
    comparison_rows: int | None = None


def move_sentence(move: AliasMove) -> str:
    """The move in one short line, e.g. `v1 → v2: rmse 0.6531 → 0.6366 on 3051 shared test rows`."""
    head = f"{f'v{move.from_version}' if move.from_version else 'none'} → v{move.to_version}"
    if move.action == "rollback":
        return f"{head}: rolled back"
    if move.challenger_rmse is None:
        return f"{head}: {move.action}"
    if move.champion_rmse is None:
        score, rows = f"first {move.alias}, rmse {move.challenger_rmse:.4f}", "test rows"
    else:
        score = f"rmse {move.champion_rmse:.4f} → {move.challenger_rmse:.4f}"
        rows = "shared test rows"
    return f"{head}: {score}" + (
        "" if move.comparison_rows is None else f" on {move.comparison_rows} {rows}"
    )


def registry_error(action: str, exc: MlflowException) -> TweetopsError:
    """One sentence for a registry call that failed for another reason than a missing alias."""
    if exc.error_code in ACCESS_ERROR_CODES:
        return access_refused(action, exc.error_code)
    first_line = str(exc.message).strip().splitlines()[0] if exc.message else exc.error_code
    return TweetopsError(
        f"The model registry failed while {action} ({exc.error_code}: "
        f"{first_line[:200]}); check MLFLOW_TRACKING_URI and the tracking "
        f"server, then run the step again."
    )


def aliases(client: MlflowClient, name: str) -> dict[str, str]:
    """Alias -> version of registered model `name` ({} when the model is not registered)."""
    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return {}
        raise registry_error(f"reading the aliases of {name}", exc) from None
    return {alias: str(version) for alias, version in (model.aliases or {}).items()}


def champion_version(client: MlflowClient, name: str) -> str | None:
    """The version alias `champion` points at; None only when there is no such alias."""
    return aliases(client, name).get(CHAMPION)


def find_version(client: MlflowClient, name: str, model_uri: str, run_id: str) -> str | None:
    """The version of `name` already holding `model_uri` of run `run_id`, or None."""
    try:
        for existing in client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'"):
            if existing.source == model_uri or _same_logged_model(existing, model_uri):
                return str(existing.version)
    except MlflowException as exc:
        raise registry_error(f"looking up {model_uri} in {name}", exc) from None
    return None


def ensure_version(
    client: MlflowClient,
    name: str,
    model_uri: str,
    run_id: str,
    tags: dict[str, str],
    description: str,
) -> tuple[str, bool]:
    """The version of `name` holding `model_uri` of run `run_id`, registered when there is none.

    Returns (version, newly registered). Registering the same training run twice reuses its
    version instead of adding a copy.
    """
    existing = find_version(client, name, model_uri, run_id)
    if existing is not None:
        return existing, False
    try:
        version = mlflow.register_model(model_uri, name, tags=tags)
        client.update_model_version(name, version.version, description=description)
    except MlflowException as exc:
        raise registry_error(f"registering {model_uri} as {name}", exc) from None
    return str(version.version), True


def _same_logged_model(version: Any, model_uri: str) -> bool:
    model_id = getattr(version, "model_id", None)
    return bool(model_id) and model_uri == f"models:/{model_id}"


def describe_model(client: MlflowClient, name: str, description: str) -> None:
    """Set the registered model's description (what it predicts, from which columns)."""
    try:
        client.update_registered_model(name, description=description)
    except MlflowException as exc:
        raise registry_error(f"describing {name}", exc) from None


def history(client: MlflowClient, name: str) -> list[AliasMove]:
    """Every recorded alias move of `name`, oldest first."""
    try:
        tags = client.get_registered_model(name).tags or {}
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise TweetopsError(
                f"No registered model {name}: run `tweetops promote` first."
            ) from None
        raise registry_error(f"reading the history of {name}", exc) from None
    moves = []
    for key, value in sorted(tags.items()):
        if not key.startswith(HISTORY_TAG_PREFIX):
            continue
        if value.startswith("{"):  # recorded before the full record moved to the version
            moves.append(AliasMove(**json.loads(value)))
            continue
        version = value.split(": ", 1)[0].rsplit("→ v", 1)[-1]
        try:
            record = client.get_model_version(name, version).tags[key]
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise registry_error(f"reading the history of {name}", exc) from None
            # the version was deleted, and its full record with it: the sentence remains
            moves.append(move_from_sentence(value, version))
            continue
        except KeyError:
            raise TweetopsError(
                f"The record of {name}'s move {key} ({value}) is missing from v{version}: "
                f"its tags were edited by hand; restore them or delete the move's tag."
            ) from None
        moves.append(AliasMove(**json.loads(record)))
    return moves


def move_from_sentence(sentence: str, version: str) -> AliasMove:
    """What a move's short sentence (:func:`move_sentence`) still says once its version is gone."""
    head, said = sentence.split(": ", 1)
    source = head.split(" → ", 1)[0]
    return AliasMove(
        at="",
        alias=CHAMPION,
        action="rollback" if said == "rolled back" else "promote",
        from_version=None if source == "none" else source.removeprefix("v"),
        to_version=version,
        reason=f"v{version} was deleted from the registry with its full record: {sentence}",
    )


def move_champion(
    client: MlflowClient,
    name: str,
    to_version: str,
    *,
    action: str,
    reason: str,
    challenger_rmse: float | None = None,
    champion_rmse: float | None = None,
    comparison_rows: int | None = None,
) -> AliasMove:
    """Point `champion` at `to_version` and record the move (registered model + version tags)."""
    to_version = str(to_version)  # MLflow hands out some versions as int (create_model_version)
    previous = champion_version(client, name)
    move = AliasMove(
        at=datetime.now(UTC).isoformat(timespec="seconds"),
        alias=CHAMPION,
        action=action,
        from_version=previous,
        to_version=to_version,
        reason=reason,
        challenger_rmse=challenger_rmse,
        champion_rmse=champion_rmse,
        comparison_rows=comparison_rows,
    )
    try:
        tags = client.get_registered_model(name).tags or {}
        sequence = sum(key.startswith(HISTORY_TAG_PREFIX) for key in tags)
        key = f"{HISTORY_TAG_PREFIX}{sequence:06d}"
        replaced = {to_version: _tag_values(client, name, to_version, _MOVE_TAGS)}
        if previous is not None and previous != to_version:
            replaced[previous] = _tag_values(client, name, previous, ("tweetops.champion_until",))
        pending = {"to_version": to_version, "from_version": previous, "key": key}
        client.set_registered_model_tag(
            name, PENDING_MOVE_TAG, json.dumps({**pending, "replaced": replaced}, sort_keys=True)
        )
        client.set_registered_model_alias(name, CHAMPION, to_version)
        client.set_model_version_tag(
            name, to_version, key, json.dumps(asdict(move), sort_keys=True)
        )
        client.set_registered_model_tag(name, key, move_sentence(move))
        client.set_model_version_tag(name, to_version, "tweetops.champion_since", move.at)
        client.set_model_version_tag(name, to_version, "tweetops.champion_reason", reason)
        if previous is not None and previous != to_version:
            client.set_model_version_tag(name, previous, "tweetops.champion_until", move.at)
        client.delete_registered_model_tag(name, PENDING_MOVE_TAG)
    except MlflowException as exc:
        raise registry_error(f"moving {CHAMPION} of {name} to v{to_version}", exc) from None
    return move


def _tag_values(
    client: MlflowClient, name: str, version: str, keys: tuple[str, ...]
) -> dict[str, str | None]:
    tags = client.get_model_version(name, version).tags or {}
    return {key: tags.get(key) for key in keys}


def settle_interrupted_move(client: MlflowClient, name: str) -> None:
    """Undo a champion move a killed process left unrecorded; call it holding the lock.

    The alias goes back where it was, and the move's record and the tags it changed are
    restored (a version deleted meanwhile is skipped), so the registry is as before the move.
    """
    try:
        pending_text = (client.get_registered_model(name).tags or {}).get(PENDING_MOVE_TAG)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return
        raise registry_error(f"reading {name}", exc) from None
    if pending_text is None:
        return
    pending = json.loads(pending_text)
    key, previous = pending["key"], pending["from_version"]
    try:
        if previous is None:
            client.delete_registered_model_alias(name, CHAMPION)
        else:
            client.set_registered_model_alias(name, CHAMPION, previous)
        if key in (client.get_registered_model(name).tags or {}):
            client.delete_registered_model_tag(name, key)
        for version, values in pending["replaced"].items():
            _restore_tags(client, name, version, {key: None, **values})
        client.delete_registered_model_tag(name, PENDING_MOVE_TAG)
    except MlflowException as exc:
        raise registry_error(f"undoing the cut-short move of {name}", exc) from None
    log.warning(
        "registry: the move of %s %s to v%s was cut short (the process was killed); it was "
        "undone, %s",
        name,
        CHAMPION,
        pending["to_version"],
        f"{CHAMPION} is v{previous} again" if previous is not None else f"there is no {CHAMPION}",
    )


def _restore_tags(
    client: MlflowClient, name: str, version: str, values: dict[str, str | None]
) -> None:
    try:
        tags = client.get_model_version(name, version).tags or {}
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return  # deleted since: nothing of it to restore
        raise
    for key, value in values.items():
        if value is not None:
            client.set_model_version_tag(name, version, key, value)
        elif key in tags:
            client.delete_model_version_tag(name, version, key)


def previous_champion(moves: list[AliasMove]) -> str | None:
    """The champion before the current one: promotions push a version, rollbacks pop one."""
    stack: list[str] = []
    for move in moves:
        if move.alias != CHAMPION:
            continue
        if move.action == "rollback":
            if stack:
                stack.pop()
            if not stack or stack[-1] != move.to_version:
                stack.append(move.to_version)
        elif not stack or stack[-1] != move.to_version:
            stack.append(move.to_version)
    return stack[-2] if len(stack) >= 2 else None


def rollback(client: MlflowClient, name: str) -> AliasMove:
    """Move `champion` back to the previous champion and record it."""
    with registry_lock(name):
        settle_interrupted_move(client, name)
        current = champion_version(client, name)
        if current is None:
            raise TweetopsError(f"{name} has no {CHAMPION} to roll back: run `tweetops promote`.")
        target = previous_champion(history(client, name))
        if target is None:
            raise TweetopsError(
                f"{name} v{current} is the first recorded {CHAMPION}: there is "
                f"no previous champion to roll back to."
            )
        try:
            client.get_model_version(name, target)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise registry_error(f"reading {name} v{target}", exc) from None
            raise TweetopsError(
                f"{name} v{target}, the previous {CHAMPION}, was deleted from the registry: "
                f"there is nothing to roll back to; {CHAMPION} stays v{current} (promote another "
                f"model with `tweetops promote`)."
            ) from None
        return move_champion(
            client,
            name,
            target,
            action="rollback",
            reason=f"rollback from v{current} by `tweetops registry rollback`",
        )


@contextmanager
def registry_lock(name: str, timeout: float = 900) -> Iterator[None]:
    """Hold the machine-wide lock of registered model `name` in the current tracking store."""
    from filelock import FileLock, Timeout

    key = hashlib.sha256(f"{mlflow.get_tracking_uri()}|{name}".encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"tweetops-registry-{key}.lock"
    lock = FileLock(str(path), timeout=timeout)
    try:
        with lock:
            yield
    except Timeout:
        raise TweetopsError(
            f"Another promote of {name} held the registry lock {path} for "
            f"{timeout:.0f}s; wait for it to finish and run again."
        ) from None


def history_table(moves: list[AliasMove]) -> str:
    """The moves as a fixed-width text table, oldest first."""
    header = ("when", "action", "from", "to", "challenger rmse", "champion rmse", "reason")
    rows = [
        (
            move.at,
            move.action,
            f"v{move.from_version}" if move.from_version else "-",
            f"v{move.to_version}",
            _score(move.challenger_rmse),
            _score(move.champion_rmse),
            move.reason,
        )
        for move in moves
    ]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, str(row[-1])]).rstrip())
    return "\n".join(lines)


def show_history(settings: Settings) -> list[AliasMove]:
    """`tweetops registry history`: log the alias moves of `promote.model_name` as a table."""
    name = settings.promote.model_name
    moves = history(MlflowClient(), name)
    if not moves:
        log.info("%s: no alias move recorded yet (run `tweetops promote`)", name)
    else:
        log.info("%s: %d alias move(s), oldest first\n%s", name, len(moves), history_table(moves))
    return moves


def rollback_champion(settings: Settings) -> AliasMove:
    """`tweetops registry rollback`: move `champion` back to the previous champion."""
    name = settings.promote.model_name
    move = rollback(MlflowClient(), name)
    log.info(
        "registry: %s %s moved from v%s back to v%s (recorded in its history)",
        name,
        CHAMPION,
        move.from_version,
        move.to_version,
    )
    return move


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
