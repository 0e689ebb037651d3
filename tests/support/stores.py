"""MLflow SQLite stores for tests: migrated once, copied per test, moved with their project.

Creating a SQLite store runs MLflow's schema migrations (about 1.5 s); copying a migrated store
takes milliseconds. A store records absolute artifact locations (each experiment's, each
run's), so a copy placed in another folder has those rewritten to the new folder.
"""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import chdir
from pathlib import Path

from mlflow.tracking import MlflowClient

STORE_NAME = "mlflow.db"


def sqlite_uri(database: Path) -> str:
    """The MLflow tracking URI of the SQLite store in `database`."""
    return f"sqlite:///{database}"


def migrated_store(folder: Path) -> Path:
    """A new SQLite store in `folder`, created and migrated by MLflow itself; its path.

    Its default experiment keeps its artifacts in `folder`/mlruns, as if created from there.
    """
    folder.mkdir(parents=True, exist_ok=True)
    database = folder / STORE_NAME
    with chdir(folder):
        MlflowClient(sqlite_uri(database)).search_experiments()  # creates and migrates it
    return database


def relocate_store(database: Path, old_root: Path, new_root: Path) -> None:
    """Rewrite `old_root` to `new_root` in every text value of the store `database`.

    Artifact locations, run artifact URIs and model sources follow the project to its new folder.
    """
    old, new = str(old_root), str(new_root)
    with sqlite3.connect(database) as connection:
        tables = [
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        for table in tables:
            for column in connection.execute(f'PRAGMA table_info("{table}")').fetchall():
                name, kind = column[1], str(column[2]).upper()
                if "CHAR" in kind or "TEXT" in kind:
                    connection.execute(
                        f'UPDATE "{table}" SET "{name}" = replace("{name}", ?, ?) '
                        f'WHERE instr("{name}", ?) > 0',
                        (old, new, old),
                    )
    connection.close()


def copy_store(template: Path, project_root: Path) -> Path:
    """`template` (a migrated store) copied into `project_root`, pointing its default
    experiment's artifacts there; the copy's path."""
    database = project_root / STORE_NAME
    shutil.copyfile(template, database)
    relocate_store(database, template.parent, project_root)
    return database


def copy_project(template_root: Path, project_root: Path) -> None:
    """Every file of the project in `template_root` (data, reports, store, artifacts) copied
    into `project_root`, the store rewritten to point at the copies."""
    shutil.copytree(template_root, project_root, dirs_exist_ok=True)
    relocate_store(project_root / STORE_NAME, template_root, project_root)
