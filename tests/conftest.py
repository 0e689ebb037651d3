"""Fixtures shared by every test: the repo's settings files, one Spark session, isolated projects.

Costly things are built once per test session and copied where a test needs its own: a migrated
MLflow store (copied into every `project`), a small project that ran ingest and features (copied
into every `featured_project`), and the same project after train (copied into every
`trained_project`; read in place by tests that only read it).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from tests.support.stores import STORE_NAME, copy_project, copy_store, migrated_store, sqlite_uri
from tweetops.features import build_features
from tweetops.ingest.step import ingest
from tweetops.logs import configure_logging
from tweetops.settings import Settings, load_settings
from tweetops.spark import build_spark
from tweetops.train import TrainResult, train

REPO_ROOT = Path(__file__).resolve().parents[1]
PARAMS_FILE = REPO_ROOT / "params.yaml"
PLUMBING_FILE = REPO_ROOT / "plumbing.yaml"  # read with params.yaml, from beside it
TEST_SPARK_OVERRIDES = (
    "spark.ui_enabled=false",
    "spark.shuffle_partitions=2",
    "spark.log_level=ERROR",
)
# the small project every `trained_project` starts from: enough rows for the promotion gate's
# 100 comparison rows and for a model that clearly beats the mean
SMALL_PROJECT = ("ingest.n_tweets=1000", "ingest.n_users=100", "train.num_trees=20")

os.environ.setdefault("DVC_NO_ANALYTICS", "1")


def copy_settings(root: Path) -> Path:
    """Copy the repo's params.yaml and plumbing.yaml into `root`; return the params.yaml there."""
    for source in (PARAMS_FILE, PLUMBING_FILE):
        shutil.copy(source, root / source.name)
    return root / PARAMS_FILE.name


os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

# pytest-xdist runs its workers under `python -c`, whose __main__ has neither __spec__ nor
# __file__. PySpark takes that for its own doctest run and exits the worker with status 0 on the
# first import of pyspark.sql.connect (mlflow.spark.log_model imports it): give it a file name.
if os.environ.get("PYTEST_XDIST_WORKER") and not hasattr(sys.modules["__main__"], "__file__"):
    sys.modules["__main__"].__file__ = "<pytest-xdist worker>"

# The test files that take longest (minutes each: whole chains through `mlflow run`, `dvc`,
# a loopback cluster), started first so that the workers of `make test` finish together.
LONGEST_FIRST = (
    "tests/integration/test_features_stream.py",
    "tests/cluster/test_cluster.py",
    "tests/e2e/test_dvc_experiments.py",
    "tests/cluster/test_isolated_workers.py",
    "tests/e2e/test_mlflow_run_tune.py",
    "tests/e2e/test_reproduce_across_commits.py",
    "tests/integration/test_train_and_promote.py",
    "tests/integration/test_concurrent_promote.py",
    "tests/integration/test_tune.py",
    "tests/e2e/test_console.py",
    "tests/e2e/test_swap_kills.py",
    "tests/e2e/test_kills.py",
    "tests/e2e/test_skip_done_steps.py",
)


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
    """A throwaway project directory with the repo's settings files and its own MLflow store."""

    root: Path

    def settings(self, *overrides: str) -> Settings:
        """Settings from this project's params.yaml with test-sized Spark and `overrides`."""
        return load_settings(self.root / "params.yaml", [*TEST_SPARK_OVERRIDES, *overrides])

    @property
    def tracking_uri(self) -> str:
        return os.environ["MLFLOW_TRACKING_URI"]


@dataclass
class FeaturedProject(Project):
    """A project where ingest and features ran with :data:`SMALL_PROJECT`."""

    def settings(self, *overrides: str) -> Settings:
        """The small project's settings, then `overrides`."""
        return super().settings(*SMALL_PROJECT, *overrides)


@dataclass
class TrainedProject(FeaturedProject):
    """A project where ingest, features and train ran with :data:`SMALL_PROJECT`."""

    trained: TrainResult


@pytest.fixture(scope="session")
def migrated_store_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite store created and migrated once per test session."""
    return migrated_store(tmp_path_factory.mktemp("mlflow-store"))


def enter_project(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_uri(root / STORE_NAME))
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)


@pytest.fixture
def project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, migrated_store_template: Path
) -> Project:
    """cd into a fresh project dir; MLflow tracks into a SQLite store inside it."""
    root = tmp_path / "project"
    root.mkdir()
    copy_settings(root)
    copy_store(migrated_store_template, root)
    enter_project(root, monkeypatch)
    return Project(root)


@pytest.fixture(scope="session")
def featured_project_template(
    tmp_path_factory: pytest.TempPathFactory, migrated_store_template: Path, spark: SparkSession
) -> FeaturedProject:
    """The small project after ingest and features, built once per test session. Read it,
    never change it: tests that change it take `featured_project`, a copy of it."""
    root = tmp_path_factory.mktemp("featured") / "project"
    root.mkdir()
    copy_settings(root)
    copy_store(migrated_store_template, root)
    with pytest.MonkeyPatch.context() as patch:
        enter_project(root, patch)
        settings = FeaturedProject(root).settings()
        ingest(settings)
        build_features(settings)
    return FeaturedProject(root)


@pytest.fixture
def featured_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, featured_project_template: FeaturedProject
) -> FeaturedProject:
    """`project`, holding a copy of the small project's snapshot and features (no model yet)."""
    root = tmp_path / "project"
    copy_project(featured_project_template.root, root)
    enter_project(root, monkeypatch)
    return FeaturedProject(root)


@pytest.fixture(scope="session")
def trained_project_template(
    tmp_path_factory: pytest.TempPathFactory, featured_project_template: FeaturedProject
) -> TrainedProject:
    """The small project after train, built once per test session. Read it, never change it:
    tests that change a project take `trained_project`, a copy of it."""
    root = tmp_path_factory.mktemp("trained") / "project"
    copy_project(featured_project_template.root, root)
    with pytest.MonkeyPatch.context() as patch:
        enter_project(root, patch)
        trained = train(FeaturedProject(root).settings())
    return TrainedProject(root, trained)


@pytest.fixture
def trained_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trained_project_template: TrainedProject
) -> TrainedProject:
    """`project`, holding a copy of the small trained project (data, reports, store, model)."""
    root = tmp_path / "project"
    copy_project(trained_project_template.root, root)
    enter_project(root, monkeypatch)
    return TrainedProject(root, trained_project_template.trained)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run :data:`LONGEST_FIRST` first, in that order, then the rest as collected."""
    rank = {path: index for index, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))
