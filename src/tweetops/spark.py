"""The only place a SparkSession is built."""

from __future__ import annotations

import atexit
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pyspark
from pyspark.sql import SparkSession

from tweetops.errors import TweetopsError
from tweetops.logs import is_verbose
from tweetops.settings import SparkSettings, is_uri

MINIMUM_JAVA_MAJOR = 17
_SECRET_WORDS = re.compile(r"secret|token|password|credential|key", re.IGNORECASE)


def java_executable() -> str:
    """Return the `java` Spark will start, or raise a one-sentence error when there is none."""
    java_home = os.environ.get("JAVA_HOME")
    candidate = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not candidate or not Path(candidate).exists():
        raise TweetopsError(
            f"Spark needs Java {MINIMUM_JAVA_MAJOR} or newer and none was found: install a JDK "
            f"(e.g. `apt-get install openjdk-{MINIMUM_JAVA_MAJOR}-jre-headless`) or set JAVA_HOME."
        )
    return candidate


def java_major_version(java: str) -> int:
    """Major version of the given `java` binary (8 for 1.8.x, 17 for 17.0.x)."""
    try:
        probe = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except OSError as exc:
        raise TweetopsError(
            f"Java at {java} does not start ({exc}); fix JAVA_HOME or PATH."
        ) from exc
    match = re.search(r'version "(\d+)(?:\.(\d+))?', probe.stderr + probe.stdout)
    if not match:
        raise TweetopsError(f"Could not read the version of Java at {java}; check the install.")
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def check_java() -> None:
    """Fail early, with one sentence, when Java is missing or older than Spark 4 needs."""
    java = java_executable()
    major = java_major_version(java)
    if major < MINIMUM_JAVA_MAJOR:
        raise TweetopsError(
            f"Spark needs Java {MINIMUM_JAVA_MAJOR} or newer but {java} is Java {major}: "
            f"install a newer JDK and point JAVA_HOME at it."
        )


# The driver's class-data-sharing archive (python -m tweetops.spark_cds builds it). Its own
# diagnostics are off: a mismatched or missing archive only means a slower start.
QUIET_CDS_LOG = "-Xlog:cds=off -Xlog:cds+dynamic=off"
CACHE_DIR_VARIABLE = "TWEETOPS_CACHE_DIR"
# read by tweetops/spark_conf/spark-env.sh
CLASSPATH_CONF_DIR_VARIABLE = "TWEETOPS_SPARK_CLASSPATH_CONF_DIR"


def cache_dir() -> Path:
    """Where tweetops keeps rebuildable files: $TWEETOPS_CACHE_DIR, else $XDG_CACHE_HOME/tweetops,
    else ~/.cache/tweetops."""
    if os.environ.get(CACHE_DIR_VARIABLE):
        return Path(os.environ[CACHE_DIR_VARIABLE])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tweetops"


def empty_classpath_conf_dir() -> Path | None:
    """An empty folder that spark-env.sh puts on the driver's class path instead of tweetops's
    spark_conf folder (class-data sharing needs every folder on the class path empty), or None
    where the cache folder cannot be written."""
    folder = cache_dir() / "spark-conf-on-classpath"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder


def archive_path(java: str) -> Path:
    """The archive for drivers started with `java` and this environment's PySpark.

    The name changes with the Java binary, the PySpark install and SPARK_HOME, so a JDK
    upgrade or another virtualenv never even tries an archive made for a different class path.
    """
    identity = "\n".join(
        (
            os.path.realpath(java),
            os.path.realpath(pyspark.__file__),
            os.environ.get("SPARK_HOME", ""),
            sys.prefix,
        )
    )
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return cache_dir() / f"spark-driver-{pyspark.__version__}-{digest}.jsa"


def archive_java_options(java: str) -> str:
    """The driver's JVM options that map the archive, or "" when there is none yet."""
    archive = archive_path(java)
    if not archive.is_file():
        return ""
    return f"-XX:SharedArchiveFile={archive} {QUIET_CDS_LOG}"


# log4j2.properties (errors only) and spark-env.sh (drops the JVM's incubator-module warning)
QUIET_CONF_DIR = Path(__file__).resolve().parent / "spark_conf"
_QUIET_LEVELS = ("ERROR", "FATAL", "OFF")


def quiet_driver_options(settings: SparkSettings) -> dict[str, str]:
    """Spark settings and environment that keep the driver's JVM quiet from its first line.

    Set before the JVM starts (PySpark hands them to spark-submit): the driver reads our
    log4j2.properties; a local driver binds to loopback (SPARK_LOCAL_IP: no hostname warning);
    without a Spark installation of the user's, SPARK_CONF_DIR points at our spark-env.sh (which
    puts an empty folder on the class path in its place, as class-data sharing needs).
    Under `-v` nothing changes: Spark logs as it would by default.
    """
    if is_verbose():
        return {}
    if settings.master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        if not os.environ.get("SPARK_HOME") and not os.environ.get("SPARK_CONF_DIR"):
            os.environ["SPARK_CONF_DIR"] = str(QUIET_CONF_DIR)
            classpath_conf_dir = empty_classpath_conf_dir()
            if classpath_conf_dir is not None:
                os.environ[CLASSPATH_CONF_DIR_VARIABLE] = str(classpath_conf_dir)
    user_options = settings.conf.get("spark.driver.extraJavaOptions", "")
    quiet = f"-Dlog4j2.configurationFile={QUIET_CONF_DIR / 'log4j2.properties'}"
    return {"spark.driver.extraJavaOptions": f"{quiet} {user_options}".strip()}


def driver_log_level(settings: SparkSettings) -> str:
    """spark.log_level, but at least WARN under `-v` (which shows every library's warnings)."""
    if is_verbose() and settings.log_level in _QUIET_LEVELS:
        return "WARN"
    return settings.log_level


# Spark's Python daemon with the tune trials' libraries imported before it forks workers
PRELOADING_DAEMON = "tweetops.tune.daemon"


def is_local_master(master: str) -> bool:
    """True for `local`, `local[N]` and `local-cluster[...]`: executors share the driver's disk."""
    return master.startswith("local")


def connect_remote(settings: SparkSettings) -> str | None:
    """The Spark Connect address the session would use (`sc://` master, `spark.remote` or
    SPARK_REMOTE), or None for a classic session."""
    if settings.master.startswith("sc://"):
        return settings.master
    return settings.conf.get("spark.remote") or os.environ.get("SPARK_REMOTE") or None


def build_spark(settings: SparkSettings) -> SparkSession:
    """Build (or reuse) the SparkSession described by `settings`.

    On local masters Python workers are pinned to the running interpreter (SparkTrials and UDF
    workers would otherwise start whatever `python` is first on PATH, without our packages) and
    forked from `tweetops.tune.daemon`, which has imported the trial libraries once. On other
    masters a `PYSPARK_PYTHON` or `spark.pyspark.python` the user set is kept (the workers'
    interpreter need not be at the driver's path), and the tweetops package is shipped to the
    executors as a zip (`addPyFile`), so they need no copy of the project. Java is not checked
    here: the CLI checks it once (:func:`check_java`) before any run opens.
    """
    remote = connect_remote(settings)
    if remote is not None:
        raise TweetopsError(
            f"Spark Connect ({remote}) is not supported: the tweetops steps need the classic "
            f"SparkSession's sparkContext, so unset spark.remote and SPARK_REMOTE and set "
            f"spark.master to local[*], spark://host:port, yarn or k8s://..."
        )
    local = is_local_master(settings.master)
    workers_python = python_for_workers(settings, os.environ.get("PYSPARK_PYTHON"))
    if workers_python is not None:
        os.environ["PYSPARK_PYTHON"] = workers_python
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    builder = (
        SparkSession.builder.master(settings.master)
        .appName(settings.app_name)
        .config("spark.sql.shuffle.partitions", str(settings.shuffle_partitions))
        .config("spark.driver.memory", settings.driver_memory)
        .config("spark.ui.enabled", str(settings.ui_enabled).lower())
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.streaming.forceDeleteTempCheckpointLocation", "true")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.streaming.numRecentProgressUpdates", "100000")
    )
    if local:
        # a local session talks to itself: stay on loopback whatever the hostname resolves to
        builder = (
            builder.config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.python.daemon.module", PRELOADING_DAEMON)
        )
    options = {**settings.conf, **quiet_driver_options(settings)}
    java_options = with_class_archive(options.get("spark.driver.extraJavaOptions", ""))
    if java_options:
        options["spark.driver.extraJavaOptions"] = java_options
    for key, value in options.items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # py4j and PySpark errors carry pages of Java stack trace
        raise TweetopsError(
            f"Spark did not start ({start_error_cause(str(exc), type(exc).__name__)}); check "
            f"the spark settings (spark.master={settings.master!r}, spark.driver_memory="
            f"{settings.driver_memory!r}, spark.conf)."
        ) from exc
    spark.sparkContext.setLogLevel(driver_log_level(settings))
    if not local:
        spark.sparkContext.addPyFile(str(package_zip()))
        if settings.conf.get("spark.python.daemon.module") == PRELOADING_DAEMON:
            check_daemon_imports(spark)
    return spark


# driver options with which the user (or tweetops.spark_cds) manages class sharing itself
_CLASS_SHARING_OPTIONS = ("-XX:ArchiveClassesAtExit", "-XX:SharedArchiveFile", "-Xshare:off")


def with_class_archive(java_options: str) -> str:
    """The driver's `java_options` with tweetops.spark_cds's class archive mapped first, when
    the archive exists and the options do not manage class sharing themselves."""
    if any(option in java_options for option in _CLASS_SHARING_OPTIONS):
        return java_options
    try:
        java = java_executable()
    except TweetopsError:
        return java_options  # no Java: the start fails with its own sentence
    return f"{archive_java_options(java)} {java_options}".strip()


def python_for_workers(settings: SparkSettings, user_python: str | None) -> str | None:
    """The interpreter to set as PYSPARK_PYTHON, or None to keep the user's choice.

    Local masters always use the driver's interpreter. On other masters the workers' Python
    may live elsewhere: a `spark.pyspark.python` or PYSPARK_PYTHON the user set is kept, and
    only without either the driver's path is used (right where every node has the same venv).
    """
    if is_local_master(settings.master):
        return sys.executable
    if "spark.pyspark.python" in settings.conf or user_python:
        return None
    return sys.executable


def start_error_cause(message: str, fallback: str) -> str:
    """What a Spark start error says: its last `Caused by:` (the root cause), else its first
    line; at most 300 characters."""
    causes = re.findall(r"Caused by: (.+)", message)
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    text = causes[-1].strip() if causes else (lines[0] if lines else fallback)
    return text[:300]


_PACKAGE_ZIP: list[Path] = []  # the zip of this process's run, built once


def package_zip() -> Path:
    """A zip of the installed tweetops package, built once per process, for `addPyFile`."""
    if _PACKAGE_ZIP:
        return _PACKAGE_ZIP[0]
    import tweetops

    package = Path(tweetops.__file__).resolve().parent
    folder = tempfile.mkdtemp(prefix="tweetops-pyfiles-")
    atexit.register(shutil.rmtree, folder, True)
    target = Path(folder) / "tweetops.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for source in sorted(package.rglob("*.py")):
            archive.write(source, Path("tweetops") / source.relative_to(package))
    _PACKAGE_ZIP.append(target)
    return target


def check_daemon_imports(spark: SparkSession) -> None:
    """Fail in one sentence when the executors cannot start the preloading daemon."""

    try:  # a Python task starts the daemon on an executor
        spark.sparkContext.parallelize([0], 1).map(lambda value: value).collect()
    except Exception as exc:  # a worker that cannot import the daemon fails the probe job
        raise TweetopsError(
            f"spark.python.daemon.module={PRELOADING_DAEMON} needs tweetops installed on every "
            f"worker node and it does not import there "
            f"({start_error_cause(str(exc), type(exc).__name__)[:160]}): install tweetops on "
            f"the workers or remove the setting from spark.conf."
        ) from None


_MISSING_FILE = re.compile(r"FILE_NOT_EXIST|PATH_NOT_FOUND|FileNotFoundException")
_MISSING_LOCATION = re.compile(r"(file:/[^\s'\"`,;]+)")


def cluster_storage_error(error: BaseException, master: str) -> TweetopsError | None:
    """One sentence for an executor that could not find a file the driver sees, else None.

    On a cluster every location Spark reads must be on storage each node sees; a driver-local
    path fails on the executors with FILE_NOT_EXIST and pages of stack trace.
    """
    message = str(error)
    if is_local_master(master) or not _MISSING_FILE.search(message):
        return None
    found = _MISSING_LOCATION.search(message)
    where = found.group(1) if found else "a data location"
    return TweetopsError(
        f"Spark's executors on {master} could not find {where}, which is on the driver's own "
        f"disk: put data.* on storage every node mounts at the same path (a file:/// URI) and "
        f"run the step again."
    )


def spark_path(path: Path | str) -> str:
    """The location for Spark: a URI as given; a local path made absolute, as Spark's JVM
    resolves relative paths against its own start directory, which need not be Python's."""
    if isinstance(path, str):
        return path if is_uri(path) else str(Path(path).resolve())
    return str(path.resolve())


def spark_conf_for_tracking(spark: SparkSession) -> dict[str, str]:
    """The session's Spark configuration without anything that looks like a secret."""
    return {
        key: value
        for key, value in sorted(spark.sparkContext.getConf().getAll())
        if not _SECRET_WORDS.search(key)
    }
