"""The environment files `mlflow run` builds from agree with pyproject.toml on Python itself.

(tests/unit/test_project_files.py checks the package pins of the three files.)
"""

from __future__ import annotations

import re
import tomllib

import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from tests.conftest import REPO_ROOT

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
PYTHON_ENV = yaml.safe_load((REPO_ROOT / "python_env.yaml").read_text())
CONDA = yaml.safe_load((REPO_ROOT / "conda.yaml").read_text())
MLPROJECT = yaml.safe_load((REPO_ROOT / "MLproject").read_text())


def test_the_mlproject_builds_from_python_env_yaml() -> None:
    assert MLPROJECT["python_env"] == "python_env.yaml"
    assert "conda_env" not in MLPROJECT  # MLflow takes one of the two
    assert (REPO_ROOT / MLPROJECT["python_env"]).is_file()


def test_python_env_pins_an_exact_python_that_pyproject_accepts() -> None:
    # an exact X.Y.Z: MLflow's virtualenv manager builds the newest X.Y.* pyenv lists otherwise
    version = str(PYTHON_ENV["python"])
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), version
    assert Version(version) in SpecifierSet(PYPROJECT["requires-python"])
    assert "pip" in PYTHON_ENV["build_dependencies"]


def test_conda_builds_the_same_python_minor_version() -> None:
    [conda_python] = [
        dep for dep in CONDA["dependencies"] if isinstance(dep, str) and dep.startswith("python=")
    ]
    major_minor = ".".join(str(PYTHON_ENV["python"]).split(".")[:2])
    assert conda_python == f"python={major_minor}"
    assert Version(f"{major_minor}.0") in SpecifierSet(PYPROJECT["requires-python"])
    assert "pip" in CONDA["dependencies"]
