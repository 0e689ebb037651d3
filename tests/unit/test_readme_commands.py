"""The README's `mlflow run` commands put runs where the README says: the project's experiment."""

from __future__ import annotations

import re
import shlex

import yaml

from tests.conftest import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
EXPERIMENT = yaml.safe_load((REPO_ROOT / "plumbing.yaml").read_text())["mlflow"]["experiment"]


def _shell_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.DOTALL)
    joined = "\n".join(block.replace("\\\n", " ") for block in blocks)
    return [line.split("#", 1)[0].strip() for line in joined.splitlines() if line.strip()]


def test_every_mlflow_run_example_names_the_projects_experiment() -> None:
    commands = [command for command in _shell_commands() if command.startswith("mlflow run")]
    assert len(commands) >= 5
    for command in commands:
        words = shlex.split(command)
        assert "--experiment-name" in words, command
        assert words[words.index("--experiment-name") + 1] == EXPERIMENT, command
