"""Start and stop the loopback cluster: PostgreSQL, `mlflow server` (basic auth) and Spark.

Everything lives in one folder (`.cluster/` by default, git-ignored): PostgreSQL's data, the
MLflow artifacts, the generated credentials (mode 600), the logs and one pid file per process.
`cluster_down` stops exactly the processes whose pid files `cluster_up` wrote (and their
children), never anything found by name. Passwords reach the servers through files and the
environment, never a command line.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

from tweetops.errors import TweetopsError
from tweetops.spark import check_java

LOOPBACK = "127.0.0.1"
WORKERS = 2
WORKER_CORES = 1
WORKER_MEMORY = "1536m"
MLFLOW_WORKERS = 2
ADMIN_USER = "admin"
DATABASE_USER = "mlflow"
TRACKING_DATABASE = "mlflow"
AUTH_DATABASE = "mlflow_auth"
READY_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 30.0
_POLL_S = 0.5
POSTGRES_LIB = Path("/usr/lib/postgresql")  # where Debian's postgresql-NN packages install


@dataclass(frozen=True)
class ClusterPorts:
    """The loopback ports of the stack (workers' web UIs take `worker_ui` and the next ones)."""

    postgres: int = 15432
    mlflow: int = 15000
    spark: int = 17077
    spark_ui: int = 18080
    worker_ui: int = 18081

    def check(self) -> None:
        """Refuse the ports neighbours take (4040 Spark UI, 5000 `mlflow ui`) and duplicates."""
        used = [self.postgres, self.mlflow, self.spark, self.spark_ui]
        used += [self.worker_ui + index for index in range(WORKERS)]
        if {4040, 5000} & set(used):
            raise TweetopsError(
                "Ports 4040 and 5000 are left to Spark's UI and `mlflow ui`: pick others."
            )
        if len(set(used)) != len(used):
            raise TweetopsError(f"The cluster's ports must differ, got {sorted(used)}.")


@dataclass(frozen=True)
class Layout:
    """Where each part of the cluster keeps its files inside the cluster folder."""

    root: Path

    @property
    def postgres(self) -> Path:
        return self.root / "postgres"

    @property
    def postgres_data(self) -> Path:
        return self.postgres / "data"

    @property
    def database_password(self) -> Path:
        return self.root / "postgres.password"

    @property
    def auth_config(self) -> Path:
        return self.root / "basic_auth.ini"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def pids(self) -> Path:
        return self.root / "pids"

    @property
    def env_file(self) -> Path:
        return self.root / "env"

    def worker_dir(self, index: int) -> Path:
        return self.root / "spark" / f"worker-{index}"


# ---------------------------------------------------------------------------------------------
# processes and pid files


def _start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (field 22 of /proc/PID/stat), None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int, start_time: str | None) -> bool:
    """Whether the process `pid` still runs and is the one recorded (not a reused pid)."""
    now = _start_time(pid)
    if now is None:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z" and (start_time is None or now == start_time)


def descendants(pid: int) -> list[int]:
    """Every process below `pid` in the process tree (children first found first)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    queue = [pid]
    while queue:
        children = parents.get(queue.pop(0), [])
        found.extend(children)
        queue.extend(children)
    return found


def write_pid_file(pid_file: Path, pid: int) -> None:
    """Record `pid` with its start time, so a later reuse of the number is not mistaken for it."""
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{pid} {_start_time(pid) or ''}\n")


def _read_pid(pid_file: Path) -> tuple[int, str | None] | None:
    try:
        fields = pid_file.read_text().split()
    except FileNotFoundError:
        return None
    return int(fields[0]), (fields[1] if len(fields) > 1 else None)


def _wait_gone(pids: list[tuple[int, str | None]], timeout: float) -> list[tuple[int, str | None]]:
    deadline = time.monotonic() + timeout
    left = [entry for entry in pids if _alive(*entry)]
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = [entry for entry in left if _alive(*entry)]
    return left


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def stop_pid_file(pid_file: Path) -> bool:
    """SIGTERM the recorded process and its descendants, SIGKILL what outlives the grace time.

    True when the process was running.
    """
    recorded = _read_pid(pid_file)
    if recorded is None:
        return False
    pid, start_time = recorded
    was_running = _alive(pid, start_time)
    if was_running:
        family = [(pid, start_time)] + [(child, _start_time(child)) for child in descendants(pid)]
        for member, _ in family:
            _signal(member, signal.SIGTERM)
        for member, _ in _wait_gone(family, STOP_TIMEOUT_S):
            _signal(member, signal.SIGKILL)
        if left := _wait_gone(family, STOP_TIMEOUT_S):
            raise TweetopsError(f"Processes {[p for p, _ in left]} did not stop; kill them by pid.")
    pid_file.unlink()
    return was_running


def _spawn(command: list[str], *, name: str, layout: Layout, env: dict[str, str]) -> int:
    """Start `command` in its own session with its output in logs/NAME.log; record its pid."""
    layout.logs.mkdir(parents=True, exist_ok=True)
    with (layout.logs / f"{name}.log").open("ab") as log:
        process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    write_pid_file(layout.pids / f"{name}.pid", process.pid)
    return process.pid


def _poll(ready: Callable[[], bool], *, what: str, pid: int, log: Path) -> None:
    """Poll `ready` until it holds; fail with the log's tail if the process dies or it times out."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if not _alive(pid, None):
            raise TweetopsError(f"{what} exited while starting; see {log}: {_tail(log)}")
        try:
            if ready():
                return
        except requests.RequestException:
            pass
        time.sleep(_POLL_S)
    raise TweetopsError(f"{what} was not ready in {READY_TIMEOUT_S:.0f}s; see {log}: {_tail(log)}")


def _tail(log: Path) -> str:
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    return " | ".join(lines[-3:])[-600:]


# ---------------------------------------------------------------------------------------------
# PostgreSQL


def postgres_bin() -> Path:
    """The folder of PostgreSQL's server programs (Debian's newest version first)."""
    versions = sorted(
        POSTGRES_LIB.glob("*/bin/initdb"),
        key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0,
        reverse=True,
    )
    initdb = versions[0] if versions else shutil.which("initdb")
    if initdb is None or not Path(initdb).with_name("pg_ctl").exists():
        raise TweetopsError(
            "PostgreSQL's server programs (initdb, pg_ctl) were not found: install them with "
            "`apt-get install postgresql` (Debian/Ubuntu)."
        )
    return Path(initdb).parent


def _as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the `postgres` user then."""
    if os.geteuid() != 0:
        return command
    if shutil.which("runuser") is None:
        raise TweetopsError("Running as root needs `runuser` (util-linux) to start PostgreSQL.")
    return ["runuser", "-u", "postgres", "--", *command]


def _give_to_postgres(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, user="postgres", group="postgres")


def _check_reachable_by_postgres(folder: Path) -> None:
    """As root, PostgreSQL runs as `postgres`, which must be able to enter every parent folder."""
    if os.geteuid() != 0:
        return
    for parent in folder.parents:
        if not parent.stat().st_mode & 0o001:
            raise TweetopsError(
                f"PostgreSQL runs as user postgres, which cannot enter {parent}: put the cluster "
                f"folder where it can (CLUSTER_DIR=...) or run `chmod o+x {parent}`."
            )


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip().splitlines()
        raise TweetopsError(f"{what} failed: {message[-1] if message else done.returncode}.")


def _start_postgres(layout: Layout, port: int, password: str) -> None:
    """initdb (first time: scram auth, superuser `mlflow`) and start on loopback only."""
    binaries = postgres_bin()
    layout.postgres.mkdir(parents=True, exist_ok=True)
    layout.postgres.chmod(0o700)
    _give_to_postgres(layout.postgres)
    if not (layout.postgres_data / "PG_VERSION").exists():
        password_file = layout.postgres / "initdb.password"
        password_file.write_text(password + "\n")
        password_file.chmod(0o600)
        _give_to_postgres(password_file)
        try:
            _run(
                _as_postgres(
                    [
                        str(binaries / "initdb"),
                        "-D",
                        str(layout.postgres_data),
                        "-U",
                        DATABASE_USER,
                        f"--pwfile={password_file}",
                        "--auth=scram-sha-256",
                        "--encoding=UTF8",
                        "--no-instructions",
                    ]
                ),
                "initdb",
            )
        finally:
            password_file.unlink()
    socket_dir = layout.postgres / "run"
    socket_dir.mkdir(exist_ok=True)
    _give_to_postgres(socket_dir)
    options = f"-c listen_addresses={LOOPBACK} -p {port} -c unix_socket_directories={socket_dir}"
    _run(
        _as_postgres(
            [
                str(binaries / "pg_ctl"),
                "start",
                "-D",
                str(layout.postgres_data),
                "-l",
                str(layout.postgres / "postgres.log"),
                "-w",
                "-t",
                str(int(READY_TIMEOUT_S)),
                "-o",
                options,
            ]
        ),
        f"Starting PostgreSQL on {LOOPBACK}:{port} (log: {layout.postgres / 'postgres.log'})",
    )
    _create_databases(port, password)


def _create_databases(port: int, password: str) -> None:
    import psycopg

    with psycopg.connect(
        host=LOOPBACK,
        port=port,
        user=DATABASE_USER,
        password=password,
        dbname="postgres",
        autocommit=True,
    ) as connection:
        existing = {row[0] for row in connection.execute("SELECT datname FROM pg_database")}
        for database in (TRACKING_DATABASE, AUTH_DATABASE):
            if database not in existing:
                connection.execute(f'CREATE DATABASE "{database}"')


def _stop_postgres(layout: Layout) -> bool:
    pid_file = layout.postgres_data / "postmaster.pid"
    recorded = _read_pid(pid_file)
    if recorded is None:
        return False
    pid = recorded[0]
    start_time = _start_time(pid)
    if start_time is None:
        return False
    _run(
        _as_postgres(
            [str(postgres_bin() / "pg_ctl"), "stop", "-D", str(layout.postgres_data), "-m", "fast"]
        ),
        "Stopping PostgreSQL",
    )
    if _wait_gone([(pid, start_time)], STOP_TIMEOUT_S):
        raise TweetopsError(f"PostgreSQL (pid {pid}) did not stop; see {layout.postgres}.")
    return True


# ---------------------------------------------------------------------------------------------
# MLflow server and Spark


def _secret(path: Path) -> str:
    """The secret stored at `path`, generated (mode 600) on first use."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(24) + "\n")
    path.chmod(0o600)
    return path.read_text().strip()


def _database_uri(port: int, password: str, database: str) -> str:
    return f"postgresql+psycopg://{DATABASE_USER}:{password}@{LOOPBACK}:{port}/{database}"


def _write_auth_config(layout: Layout, ports: ClusterPorts, password: str) -> str:
    """MLflow's basic-auth config (users in PostgreSQL, no access by default); admin password."""
    if layout.auth_config.exists():
        text = layout.auth_config.read_text()
        admin_password = next(
            line.split("=", 1)[1].strip()
            for line in text.splitlines()
            if line.startswith("admin_password")
        )
    else:
        admin_password = secrets.token_urlsafe(24)
    layout.auth_config.touch(mode=0o600)
    layout.auth_config.chmod(0o600)
    layout.auth_config.write_text(
        "[mlflow]\n"
        "# who is not granted an experiment or model can do nothing with it\n"
        "default_permission = NO_PERMISSIONS\n"
        f"database_uri = {_database_uri(ports.postgres, password, AUTH_DATABASE)}\n"
        f"admin_username = {ADMIN_USER}\n"
        f"admin_password = {admin_password}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "grant_default_workspace_access = false\n"
    )
    return admin_password


def _check_server_extras() -> None:
    try:
        import flask_wtf  # noqa: F401  (mlflow[auth])
        import psycopg  # noqa: F401
    except ImportError as exc:
        raise TweetopsError(
            f"The cluster's MLflow server needs the postgres extra ({exc.name} is missing): "
            "run `.venv/bin/pip install -e '.[postgres]'`."
        ) from None


def _start_mlflow(layout: Layout, ports: ClusterPorts, password: str) -> str:
    """Start `mlflow server` (basic auth, PostgreSQL, proxied artifacts); its admin password."""
    admin_password = _write_auth_config(layout, ports, password)
    layout.artifacts.mkdir(parents=True, exist_ok=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MLFLOW_", "_MLFLOW_"))
    }
    env["MLFLOW_BACKEND_STORE_URI"] = _database_uri(ports.postgres, password, TRACKING_DATABASE)
    env["MLFLOW_AUTH_CONFIG_PATH"] = str(layout.auth_config.resolve())
    # the auth app's CSRF key: the same for both workers and across restarts
    env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = _secret(layout.root / "flask.secret")
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        LOOPBACK,
        "--port",
        str(ports.mlflow),
        "--artifacts-destination",
        str(layout.artifacts.resolve()),
        "--workers",
        str(MLFLOW_WORKERS),
        "--app-name",
        "basic-auth",
        # a worker importing MLflow on a busy machine misses uvicorn's 5 s health check and is
        # restarted over and over
        "--uvicorn-opts",
        "--timeout-worker-healthcheck 120",
    ]
    pid = _spawn(command, name="mlflow-server", layout=layout, env=env)
    health = f"http://{LOOPBACK}:{ports.mlflow}/health"
    _poll(
        lambda: requests.get(health, timeout=2).status_code == 200,
        what="The MLflow server",
        pid=pid,
        log=layout.logs / "mlflow-server.log",
    )
    return admin_password


def spark_home() -> Path:
    """The Spark distribution inside the pyspark wheel."""
    import pyspark

    return Path(pyspark.__file__).parent


def alive_workers(spark_ui_port: int) -> int:
    """How many workers the master's `/json/` shows ALIVE."""
    state = requests.get(f"http://{LOOPBACK}:{spark_ui_port}/json/", timeout=2).json()
    return sum(1 for worker in state.get("workers", []) if worker.get("state") == "ALIVE")


def start_spark(
    layout: Layout,
    ports: ClusterPorts,
    *,
    workers: int = WORKERS,
    wrap_worker: Callable[[list[str]], list[str]] | None = None,
) -> None:
    """Start a standalone master and `workers` workers (`--cores 1`) from the pyspark wheel.

    Each worker's command goes through `wrap_worker` when given (a test runs the workers in
    their own mount namespace that way). Returns when the master shows every worker ALIVE.
    """
    home = spark_home()
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_", "SPARK_"))
    }
    env.update(SPARK_HOME=str(home), SPARK_LOCAL_IP=LOOPBACK)
    spark_class = str(home / "bin" / "spark-class")
    master_pid = _spawn(
        [
            spark_class,
            "org.apache.spark.deploy.master.Master",
            "--host",
            LOOPBACK,
            "--port",
            str(ports.spark),
            "--webui-port",
            str(ports.spark_ui),
        ],
        name="spark-master",
        layout=layout,
        env=env,
    )
    _poll(
        lambda: alive_workers(ports.spark_ui) >= 0,
        what="The Spark master",
        pid=master_pid,
        log=layout.logs / "spark-master.log",
    )
    for index in range(1, workers + 1):
        work_dir = layout.worker_dir(index)
        work_dir.mkdir(parents=True, exist_ok=True)
        command = [
            spark_class,
            "org.apache.spark.deploy.worker.Worker",
            "--host",
            LOOPBACK,
            "--cores",
            str(WORKER_CORES),
            "--memory",
            WORKER_MEMORY,
            "--webui-port",
            str(ports.worker_ui + index - 1),
            "--work-dir",
            str(work_dir.resolve()),
            f"spark://{LOOPBACK}:{ports.spark}",
        ]
        _spawn(
            wrap_worker(command) if wrap_worker else command,
            name=f"spark-worker-{index}",
            layout=layout,
            env=env,
        )
    _poll(
        lambda: alive_workers(ports.spark_ui) == workers,
        what=f"The Spark cluster ({workers} ALIVE workers)",
        pid=master_pid,
        log=layout.logs / "spark-master.log",
    )


def stop_spark(layout: Layout) -> list[str]:
    """Stop the Spark workers, then the master, that :func:`start_spark` recorded in `layout`."""
    names = [path.stem for path in sorted(layout.pids.glob("spark-worker-*.pid"), reverse=True)]
    return [name for name in (*names, "spark-master") if stop_pid_file(layout.pids / f"{name}.pid")]


# ---------------------------------------------------------------------------------------------
# the two commands


def _running(layout: Layout) -> list[str]:
    names = [
        path.stem
        for path in sorted(layout.pids.glob("*.pid"))
        if (recorded := _read_pid(path)) is not None and _alive(*recorded)
    ]
    postgres = _read_pid(layout.postgres_data / "postmaster.pid")
    if postgres is not None and _start_time(postgres[0]) is not None:
        names.append("postgres")
    return names


def cluster_up(folder: Path, ports: ClusterPorts) -> None:
    """Start PostgreSQL, the MLflow server and the Spark master and workers in `folder`.

    Each part is polled until it answers. When one fails, what was started is stopped again.
    The `export` lines are written to `folder`/env (mode 600).
    """
    ports.check()
    check_java()
    postgres_bin()
    _check_server_extras()
    layout = Layout(folder.resolve())
    _check_reachable_by_postgres(layout.root)
    if running := _running(layout):
        raise TweetopsError(
            f"A cluster already runs from {folder} ({', '.join(running)}): "
            "run `make cluster-down` first."
        )
    layout.root.mkdir(parents=True, exist_ok=True)
    layout.root.chmod(0o711)  # PostgreSQL's user must reach its own folder inside
    password = _secret(layout.database_password)
    try:
        _start_postgres(layout, ports.postgres, password)
        admin_password = _start_mlflow(layout, ports, password)
        start_spark(layout, ports)
    except BaseException:
        cluster_down(folder)
        raise
    _write_exports(layout, ports, admin_password)


def cluster_down(folder: Path) -> list[str]:
    """Stop what `cluster_up` started in `folder`, from its pid files; the parts stopped."""
    layout = Layout(folder.resolve())
    stopped = stop_spark(layout)
    if stop_pid_file(layout.pids / "mlflow-server.pid"):
        stopped.append("mlflow-server")
    if _stop_postgres(layout):
        stopped.append("postgres")
    return stopped


def _write_exports(layout: Layout, ports: ClusterPorts, admin_password: str) -> None:
    lines = [
        f"export MLFLOW_TRACKING_URI=http://{LOOPBACK}:{ports.mlflow}",
        f"export MLFLOW_TRACKING_USERNAME={ADMIN_USER}",
        f"export MLFLOW_TRACKING_PASSWORD={admin_password}",
        f"export SPARK_MASTER_URL=spark://{LOOPBACK}:{ports.spark}",
        f"export SPARK_LOCAL_IP={LOOPBACK}",
    ]
    layout.env_file.touch(mode=0o600)
    layout.env_file.chmod(0o600)
    layout.env_file.write_text("\n".join(lines) + "\n")


def exports(folder: Path) -> str:
    """The `export` lines of the running cluster, and how to use them."""
    layout = Layout(folder.resolve())
    return (
        "# the cluster is up; in your shell:\n"
        + layout.env_file.read_text()
        + "# then e.g.: tweetops main -S main.tune=true -S spark.master=$SPARK_MASTER_URL\n"
        + f"# (the same lines are in {layout.env_file}; stop it with `make cluster-down`)"
    )
