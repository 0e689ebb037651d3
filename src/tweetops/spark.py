"""The only place a SparkSession is built."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from pyspark.sql import SparkSession

from tweetops.errors import TweetopsError
from tweetops.settings import SparkSettings

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


# Spark's Python daemon with the tune trials' libraries imported before it forks workers
PRELOADING_DAEMON = "tweetops.tune.daemon"


def build_spark(settings: SparkSettings) -> SparkSession:
    """Build (or reuse) the SparkSession described by `settings`.

    Python workers are pinned to the running interpreter: SparkTrials and UDF workers would
    otherwise start whatever `python` is first on PATH, without our packages. On local masters
    they are forked from `tweetops.tune.daemon`, which has imported the trial libraries once.
    Java is not checked here: the CLI checks it once (:func:`check_java`) before any run opens.
    """
    os.environ["PYSPARK_PYTHON"] = sys.executable
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
    if settings.master.startswith("local"):
        # a local session talks to itself: stay on loopback whatever the hostname resolves to
        builder = (
            builder.config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.python.daemon.module", PRELOADING_DAEMON)
        )
    for key, value in settings.conf.items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # py4j and PySpark errors carry pages of Java stack trace
        first = next(
            (line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__
        )
        raise TweetopsError(
            f"Spark did not start ({first[:200]}); check the spark settings "
            f"(spark.master={settings.master!r}, spark.driver_memory="
            f"{settings.driver_memory!r}, spark.conf)."
        ) from exc
    spark.sparkContext.setLogLevel(settings.log_level)
    return spark


def spark_path(path: Path) -> str:
    """An absolute path for Spark: its JVM resolves relative paths against its own start
    directory, which need not be Python's current one."""
    return str(path.resolve())


def spark_conf_for_tracking(spark: SparkSession) -> dict[str, str]:
    """The session's Spark configuration without anything that looks like a secret."""
    return {
        key: value
        for key, value in sorted(spark.sparkContext.getConf().getAll())
        if not _SECRET_WORDS.search(key)
    }
