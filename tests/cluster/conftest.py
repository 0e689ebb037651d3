"""The stack of `make cluster-up`, started once per test session and stopped at its end."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.e2e.conftest import user_env
from tests.support.mlflow_server import free_port


@dataclass
class Cluster:
    """A running `make cluster-up` stack: its folder, `export` lines and make variables."""

    folder: Path
    exports: dict[str, str]
    make_variables: list[str]

    def env(self, **extra: str) -> dict[str, str]:
        """A user's environment after pasting the `export` lines (and `extra`)."""
        return user_env(**{**self.exports, **extra})

    def down(self) -> subprocess.CompletedProcess[str]:
        """`make cluster-down` for this stack."""
        return make("cluster-down", *self.make_variables)


def make(target: str, *variables: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", target, *variables],
        cwd=REPO_ROOT,
        env=user_env(),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def parse_exports(stdout: str) -> dict[str, str]:
    """The `export NAME=value` lines cluster-up printed."""
    pairs = (line.removeprefix("export ").split("=", 1) for line in stdout.splitlines())
    return {
        pair[0]: pair[1]
        for pair in pairs
        if len(pair) == 2 and not pair[0].startswith("#") and " " not in pair[0]
    }


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """`make cluster-up` on free loopback ports in a fresh folder; `make cluster-down` after."""
    # PostgreSQL runs as user postgres, which cannot enter pytest's private tmp folders
    parent = Path(tempfile.mkdtemp(prefix="tweetops-cluster-"))
    parent.chmod(0o711)
    folder = parent / "cluster"
    worker_ui = free_port()
    variables = [
        f"CLUSTER_DIR={folder}",
        f"CLUSTER_PG_PORT={free_port()}",
        f"CLUSTER_MLFLOW_PORT={free_port()}",
        f"CLUSTER_SPARK_PORT={free_port()}",
        f"CLUSTER_SPARK_UI_PORT={free_port()}",
        f"CLUSTER_WORKER_UI_PORT={worker_ui}",
    ]
    up = make("cluster-up", *variables)
    stack = Cluster(folder, parse_exports(up.stdout), variables)
    try:
        assert up.returncode == 0, f"cluster-up failed:\n{up.stdout}\n{up.stderr}"
        yield stack
    finally:
        stack.down()
        shutil.rmtree(parent, ignore_errors=True)
