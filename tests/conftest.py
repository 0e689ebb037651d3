"""Fixtures shared by every test: the repo's params.yaml, one Spark session, isolated projects."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from tweetops.logs import configure_logging
from tweetops.settings import Settings, load_settings
from tweetops.spark import build_spark

REPO_ROOT = Path(__file__).resolve().parents[1]
PARAMS_FILE = REPO_ROOT / "params.yaml"
TEST_SPARK_OVERRIDES = (
    "spark.ui_enabled=false",
    "spark.shuffle_partitions=2",
    "spark.log_level=ERROR",
)

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")


@pytest.fixture(scope="session", autouse=True)
def console_logging() -> None:
    """Log as the CLI does, so steps' summary lines reach the captured stdout."""
    configure_logging(0)


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    """The one SparkSession of the test run, built the way the product builds it."""
    session = build_spark(load_settings(PARAMS_FILE, list(TEST_SPARK_OVERRIDES)).spark)
    yield session
    session.stop()


@dataclass
class Project:
    """A throwaway project directory with the repo's params.yaml and its own MLflow store."""

    root: Path

    def settings(self, *overrides: str) -> Settings:
        """Settings from this project's params.yaml with test-sized Spark and `overrides`."""
        return load_settings(self.root / "params.yaml", [*TEST_SPARK_OVERRIDES, *overrides])

    @property
    def tracking_uri(self) -> str:
        return os.environ["MLFLOW_TRACKING_URI"]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    """cd into a fresh project dir; MLflow tracks into a SQLite store inside it."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(PARAMS_FILE, root / "params.yaml")
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    return Project(root)
