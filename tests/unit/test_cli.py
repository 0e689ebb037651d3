"""The CLI as users meet it: a bad value or a missing Java gives one sentence and exit code 2."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PARAMS_FILE


def _tweetops(cwd: Path, *args: str, env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tweetops", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _one_sentence(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert lines[0].startswith("error: ") and lines[0].endswith(".")
    return lines[0]


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    shutil.copy(PARAMS_FILE, tmp_path / "params.yaml")
    return tmp_path


def test_bad_param_value_names_the_key_and_exits_2(project_dir: Path) -> None:
    done = _tweetops(project_dir, "train", "-S", "num_trees=zero")
    assert done.returncode == 2
    line = _one_sentence(done.stderr)
    assert "train.num_trees='zero'" in line and "integer" in line


def test_unknown_setting_is_named(project_dir: Path) -> None:
    done = _tweetops(project_dir, "ingest", "-S", "ingest.n_tweet=10")
    assert done.returncode == 2
    assert "ingest.n_tweet is unknown" in _one_sentence(done.stderr)


def test_missing_params_file_says_where_to_run(tmp_path: Path) -> None:
    done = _tweetops(tmp_path, "features")
    assert done.returncode == 2
    assert "run from the project root" in _one_sentence(done.stderr)


def test_missing_java_is_one_sentence_not_a_py4j_traceback(project_dir: Path) -> None:
    env = {**os.environ, "JAVA_HOME": str(project_dir / "no-jdk-here")}
    done = _tweetops(project_dir, "train", env=env)
    assert done.returncode == 2
    line = _one_sentence(done.stderr)
    assert "Java 17 or newer" in line and "JAVA_HOME" in line


def test_too_old_java_is_named_with_its_version(project_dir: Path) -> None:
    java = project_dir / "jdk8" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text('#!/bin/sh\necho \'openjdk version "1.8.0_392"\' >&2\n')
    java.chmod(java.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "JAVA_HOME": str(project_dir / "jdk8")}
    done = _tweetops(project_dir, "train", env=env)
    assert done.returncode == 2
    assert "is Java 8" in _one_sentence(done.stderr)


def test_unavailable_source_is_refused_before_anything_is_written(project_dir: Path) -> None:
    done = _tweetops(project_dir, "ingest", "-S", "source=carrier-pigeon")
    assert done.returncode == 2
    assert "ingest.source" in _one_sentence(done.stderr)
    assert not (project_dir / "data").exists()
