"""The cluster's pieces that need no cluster: ports, pid files, missing PostgreSQL, 401/403."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import psutil
import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import PERMISSION_DENIED, UNAUTHENTICATED

from tweetops.cluster import stack
from tweetops.cluster.stack import ClusterPorts, descendants, stop_pid_file, write_pid_file
from tweetops.errors import TweetopsError
from tweetops.registry import registry_error


@pytest.mark.parametrize("ports", [ClusterPorts(mlflow=5000), ClusterPorts(spark_ui=4040)])
def test_the_ports_neighbours_take_are_refused(ports: ClusterPorts) -> None:
    with pytest.raises(TweetopsError, match="4040 and 5000"):
        ports.check()


def test_ports_must_differ() -> None:
    with pytest.raises(TweetopsError, match="must differ"):
        ClusterPorts(postgres=15000, mlflow=15000).check()
    ClusterPorts().check()


def _tree() -> subprocess.Popen[bytes]:
    """A shell with two sleeping children, like a server with its workers."""
    process = subprocess.Popen(
        ["bash", "-c", "sleep 300 & sleep 300 & wait"], start_new_session=True
    )
    deadline = time.monotonic() + 30
    while len(descendants(process.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    return process


def _running(process: psutil.Process) -> bool:
    """Running and not a zombie (dead, waiting for a parent to reap it)."""
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def test_stop_pid_file_stops_the_process_and_its_children(tmp_path: Path) -> None:
    process = _tree()
    children = [psutil.Process(pid) for pid in descendants(process.pid)]
    assert len(children) == 2
    pid_file = tmp_path / "server.pid"
    write_pid_file(pid_file, process.pid)

    assert stop_pid_file(pid_file) is True

    process.wait(timeout=30)
    assert not [child for child in children if _running(child)]
    assert not pid_file.exists()
    assert stop_pid_file(pid_file) is False  # nothing recorded: nothing to stop


def test_a_reused_pid_is_not_signalled(tmp_path: Path) -> None:
    process = _tree()
    try:
        pid_file = tmp_path / "old.pid"
        pid_file.write_text(f"{process.pid} 1\n")  # same number, another start time

        assert stop_pid_file(pid_file) is False

        assert process.poll() is None and not pid_file.exists()
    finally:
        for pid in [*descendants(process.pid), process.pid]:
            psutil.Process(pid).kill()
        process.wait(timeout=30)


def test_missing_postgresql_is_one_sentence_saying_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stack, "POSTGRES_LIB", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(TweetopsError) as refused:
        stack.postgres_bin()
    message = str(refused.value)
    assert "apt-get install postgresql" in message and "\n" not in message


def test_a_403_from_the_registry_names_the_user_and_the_permission_needed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ada")
    denied = MlflowException("Permission denied", error_code=PERMISSION_DENIED)
    message = str(registry_error("moving champion of m to v2", denied))
    assert "refused moving champion of m to v2 to user 'ada'" in message
    assert "EDIT permission" in message
    unauthenticated = MlflowException("Unauthorized", error_code=UNAUTHENTICATED)
    assert "MLFLOW_TRACKING_PASSWORD" in str(registry_error("reading m", unauthenticated))
