"""The Spark driver's class archive: built whole or not at all, then mapped by every driver."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tweetops.spark import (
    CACHE_DIR_VARIABLE,
    archive_java_options,
    archive_path,
    java_executable,
    with_class_archive,
)
from tweetops.spark_cds import remove_abandoned_archives

SHARED = "source: shared objects file (top)"  # -Xlog:class+load for a class of the archive


def _build(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tweetops.spark_cds"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_options_name_the_archive_only_once_it_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_DIR_VARIABLE, str(tmp_path))
    java = java_executable()
    assert archive_java_options(java) == ""
    assert with_class_archive("-Dkeep=1") == "-Dkeep=1"

    archive_path(java).parent.mkdir(parents=True, exist_ok=True)
    archive_path(java).write_bytes(b"an archive")
    options = with_class_archive("-Dkeep=1")
    assert options.startswith(f"-XX:SharedArchiveFile={archive_path(java)} ")
    assert options.endswith(" -Dkeep=1")
    # a user who manages class sharing keeps exactly their options
    for own in ("-Xshare:off", "-XX:SharedArchiveFile=/elsewhere.jsa"):
        assert with_class_archive(own) == own


def test_only_the_leftovers_of_dead_writers_are_removed(tmp_path: Path) -> None:
    finished = subprocess.Popen(["true"])
    finished.wait()
    dead = tmp_path / f"spark-driver-4-abc.jsa.{finished.pid}.tmp"
    alive = tmp_path / f"spark-driver-4-abc.jsa.{os.getpid()}.tmp"
    whole = tmp_path / "spark-driver-4-abc.jsa"
    for path in (dead, alive, whole):
        path.write_bytes(b"x")

    assert remove_abandoned_archives(tmp_path) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, whole.name])


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_build_killed_while_the_jvm_writes_leaves_no_archive(tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    killed = _build({**os.environ, CACHE_DIR_VARIABLE: str(folder)})
    deadline = time.monotonic() + 600
    while not list(folder.glob("*.jsa.*.tmp")) and killed.poll() is None:
        assert time.monotonic() < deadline, "the build never began writing its archive"
        time.sleep(0.05)
    assert killed.poll() is None, killed.communicate()
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    time.sleep(5)  # the orphaned JVM finishes its file or dies: nobody renames it

    assert not list(folder.glob("*.jsa")), sorted(p.name for p in folder.iterdir())
    (leftover,) = folder.glob("*.jsa.*.tmp")
    assert remove_abandoned_archives(folder) == [leftover]  # the next build clears it


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_archive_make_builds_is_mapped_by_the_next_driver(tmp_path: Path) -> None:
    # `make` built it after installing; a suite run without make builds it the same way here
    archive = archive_path(java_executable())
    if not archive.is_file():
        built = _build(dict(os.environ))
        stdout, stderr = built.communicate(timeout=600)
        assert built.returncode == 0, stderr[-3000:]
        assert f"written to {archive}" in stdout
    assert not list(archive.parent.glob(f"{archive.name}.*.tmp"))

    log = tmp_path / "class-load.log"
    probe = (
        "import sys\n"
        "from tests.conftest import PARAMS_FILE, TEST_SPARK_OVERRIDES\n"
        "from tweetops.settings import load_settings\n"
        "from tweetops.spark import build_spark\n"
        "options = '-Xlog:class+load=info:file=' + sys.argv[1]\n"
        "overrides = [*TEST_SPARK_OVERRIDES, "
        "'spark.conf={\"spark.driver.extraJavaOptions\": \"' + options + '\"}']\n"
        "spark = build_spark(load_settings(PARAMS_FILE, overrides).spark)\n"
        "assert spark.range(3).count() == 3\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(log)],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = log.read_text()
    assert f"org.apache.spark.SparkContext {SHARED}" in loaded
    assert f"org.apache.spark.sql.SparkSession {SHARED}" in loaded
