"""Versions of the tools that shape a snapshot or a run (for manifests and MLflow tags)."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

TRACKED_PACKAGES = (
    "tweetops",
    "tweepy",
    "pydantic",
    "orjson",
    "pyspark",
    "mlflow",
    "dvc",
    "hyperopt",
    "numpy",
    "pandas",
    "pyarrow",
)


def tool_versions() -> dict[str, str]:
    """Python and the installed versions of the packages that matter for reproducibility."""
    versions = {"python": platform.python_version()}
    for package in TRACKED_PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            continue
    return versions
