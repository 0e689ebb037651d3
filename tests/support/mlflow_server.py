"""A real `mlflow server` on 127.0.0.1 with a SQLite backend and proxied artifacts."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

# `mlflow run .` as the README's examples run it: the current interpreter, no environment to build
MLFLOW_RUN = [
    sys.executable,
    "-m",
    "mlflow",
    "run",
    ".",
    "--env-manager",
    "local",
    "--experiment-name",
    "tweetops",
]


def models_serve_command(model_uri: str, port: int) -> list[str]:
    """`mlflow models serve` of `model_uri` on 127.0.0.1:`port`, in the current environment."""
    return [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "serve",
        "-m",
        model_uri,
        "--env-manager",
        "local",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


def free_port() -> int:
    """An unused TCP port on the loopback interface."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_http(url: str, process: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    """Poll `url` until it answers 200; fail with the server's log if it dies or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text()[-4000:]}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):  # not up yet, or busy
            pass
        time.sleep(0.5)
    raise RuntimeError(f"server did not answer {url} in {timeout}s:\n{log.read_text()[-4000:]}")


@contextmanager
def http_server(
    command: list[str],
    *,
    port: int,
    health_path: str,
    cwd: Path,
    log: Path,
    env: dict[str, str] | None = None,
    timeout: float = 180,
) -> Iterator[str]:
    """Run `command` (a server on 127.0.0.1:`port`) until it is healthy; yield its base URL.

    The server's output goes to `log`; it is terminated (killed if it lingers) afterwards.
    """
    with log.open("wb") as sink:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base_url}{health_path}", process, log, timeout)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


@contextmanager
def mlflow_server(root: Path, timeout: float = 180) -> Iterator[str]:
    """Start `mlflow server` storing into `root`; yield its tracking URI; stop it after.

    `timeout` bounds the wait for its first healthy answer (seconds).
    """
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    with http_server(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{root / 'server.db'}",
            "--artifacts-destination",
            str(root / "server-artifacts"),
            "--workers",
            "1",
        ],
        port=port,
        health_path="/health",
        cwd=root,
        log=root / "mlflow-server.log",
        timeout=timeout,
    ) as tracking_uri:
        yield tracking_uri
