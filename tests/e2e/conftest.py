"""Helpers for end-to-end tests: a copy of the project as a user would clone it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO_ROOT

DVC = [sys.executable, "-m", "dvc"]
PROJECT_FILES = (
    "MLproject",
    "python_env.yaml",
    "conda.yaml",
    "params.yaml",
    "plumbing.yaml",
    "dvc.yaml",
    ".dvcignore",
    "pyproject.toml",
    "README.md",
    ".gitignore",
)


def copy_project(destination: Path, **param_changes: dict) -> Path:
    """Copy the project's files (not its data or stores) and change settings, section by
    section, each key in the file that holds it (params.yaml or plumbing.yaml)."""
    destination.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        if (REPO_ROOT / name).exists():
            shutil.copy(REPO_ROOT / name, destination / name)
    shutil.copytree(
        REPO_ROOT / "src",
        destination / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
    )
    shutil.copytree(
        REPO_ROOT / ".dvc", destination / ".dvc", ignore=shutil.ignore_patterns("tmp", "cache")
    )
    change_settings(destination, **param_changes)
    return destination


def change_settings(project: Path, **changes: dict) -> None:
    """Set `section: {key: value}` in the project's params.yaml or plumbing.yaml, whichever
    holds the key (as a user edits it); a key neither holds is a mistake of the test."""
    files = {name: project / name for name in ("params.yaml", "plumbing.yaml")}
    contents = {name: yaml.safe_load(path.read_text()) for name, path in files.items()}
    changed = set()
    for section, keys in changes.items():
        for key, value in keys.items():
            [holder] = [
                name for name, content in contents.items() if key in content.get(section, {})
            ]
            contents[holder][section][key] = value
            changed.add(holder)
    for name in changed:
        files[name].write_text(yaml.safe_dump(contents[name], sort_keys=False))


def user_env(**extra: str) -> dict[str, str]:
    """The environment of a user who activated the project's virtualenv (and no MLflow vars)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    env.update(extra)
    return env


def run(
    command: list[str], cwd: Path, env: dict[str, str], timeout: int = 900
) -> subprocess.CompletedProcess[str]:
    """Run a command like a user would; fail with its output when it fails."""
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, (
        f"{' '.join(command)} exited {done.returncode}\n--- stdout\n{done.stdout[-6000:]}"
        f"\n--- stderr\n{done.stderr[-6000:]}"
    )
    return done


def git_user_env() -> dict[str, str]:
    """:func:`user_env` with a git identity, for tests that commit."""
    return user_env(
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.com",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.com",
    )


def commit_clone(project: Path, env: dict[str, str]) -> None:
    """Make `project` a git repository whose first commit is the copied project."""
    run(["git", "init", "-q"], cwd=project, env=env)
    run(["git", "add", "-A"], cwd=project, env=env)
    run(["git", "commit", "-qm", "clone"], cwd=project, env=env)
