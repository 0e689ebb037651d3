"""One name per step everywhere: MLproject entry point = CLI command = DVC stage = settings section.

A reader who knows one of them knows where the others are; these tests keep it true, and keep the
three dependency lists (pyproject, python_env.yaml, conda.yaml) in step.
"""

from __future__ import annotations

import re
import tomllib

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.support.imports import stage_modules
from tweetops.cli import app
from tweetops.settings import Settings, read_settings_files

MLPROJECT = yaml.safe_load((REPO_ROOT / "MLproject").read_text())
DVC = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())
PARAMS = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
SETTINGS = read_settings_files(REPO_ROOT / "params.yaml")  # params.yaml and plumbing.yaml
DATA_PATHS = set(SETTINGS["data"].values())
CLI_COMMANDS = {command.name for command in app.registered_commands}
COMMAND_PATTERN = re.compile(r"python -m tweetops (\w+)")
# the module each stage runs (`python -m tweetops <stage>` calls its entry function)
STEP_MODULES = {
    "ingest": "tweetops.ingest.step",
    "features": "tweetops.features",
    "train": "tweetops.train",
    "promote": "tweetops.promote",
}


def test_every_entry_point_runs_the_cli_command_of_its_name() -> None:
    entry_points = MLPROJECT["entry_points"]
    assert set(entry_points) == CLI_COMMANDS
    for name, entry in entry_points.items():
        assert COMMAND_PATTERN.findall(entry["command"]) == [name]


@pytest.mark.parametrize("name", sorted(MLPROJECT["entry_points"]))
def test_entry_points_declare_no_parameters(name: str) -> None:
    # every `-P key=value` reaches the command as `--key value`; a declared parameter would need
    # a default of its own (a second source of defaults) or an empty one, logged as a param ''
    entry = MLPROJECT["entry_points"][name]
    assert "parameters" not in entry
    assert "{" not in entry["command"]


def test_dvc_stages_run_the_cli_command_of_their_name() -> None:
    stages = DVC["stages"]
    # promote first: DVC orders `dvc exp show`'s param columns by the first stage declaring each
    # file, and promote's mlflow_run (the MLflow training run) belongs right after the metrics
    assert list(stages) == ["promote", "ingest", "features", "train"]
    assert next(iter(stages["promote"]["params"])) == {"reports/train_run.json": ["mlflow_run"]}
    for name, stage in stages.items():
        assert stage["cmd"] == f"python -m tweetops {name}"
        for dep in _paths(stage["deps"]):
            assert (REPO_ROOT / dep).exists() or dep.startswith(("data/", "reports/")), dep


def read_keys(section: str) -> tuple[list[str], set[str], set[str]]:
    """What the step of `section` reads: its params.yaml keys (in that file's order), its
    plumbing.yaml keys, and the `data` paths it names (`$data.<key>` values).

    Every key of the section is read by its step; the keys whose value refers to the `data`
    section reach the stage as the deps and outs dvc.yaml writes out instead of `params:`.
    """
    in_params, in_plumbing, paths = [], set(), set()
    for key, value in SETTINGS[section].items():
        if isinstance(value, str) and value.startswith("$data."):
            paths.add(SETTINGS["data"][value.removeprefix("$data.")])
        elif key in PARAMS.get(section, {}):
            in_params.append(f"{section}.{key}")
        else:
            in_plumbing.add(f"{section}.{key}")
    return in_params, in_plumbing, paths


@pytest.mark.parametrize("name", sorted(DVC["stages"]))
def test_each_stage_declares_exactly_the_keys_its_step_reads(name: str) -> None:
    stage = DVC["stages"][name]
    declared = [entry for entry in stage["params"] if isinstance(entry, str)]
    from_plumbing = [
        set(entry["plumbing.yaml"]) for entry in stage["params"] if "plumbing.yaml" in entry
    ]
    in_params, in_plumbing, paths = read_keys(name)
    assert declared == in_params  # in params.yaml's order, as `dvc exp show` shows them
    assert from_plumbing == ([in_plumbing] if in_plumbing else [])
    # each folder or report the step names is one the stage tracks (or lies inside one)
    tracked = [REPO_ROOT / path for path in _paths([*stage["deps"], *stage.get("outs", [])])]
    tracked += [REPO_ROOT / path for path in _paths(stage.get("metrics", []))]
    for path in paths:
        target = REPO_ROOT / path
        assert any(target == t or t in target.parents for t in tracked), f"{name}: {path}"


def test_read_keys_split_the_section_by_file_and_leave_out_its_paths() -> None:
    in_params, in_plumbing, paths = read_keys("train")
    assert "train.num_trees" in in_params and "train.tuned_from" in in_params
    assert "train.storage_level" in in_plumbing
    assert "data/features/training" in paths  # train.training_rows_dir: $data.training_rows
    assert not {"train.training_rows_dir"} & {*in_params, *in_plumbing}


def _paths(entries: list) -> list[str]:
    """Stage deps/outs (or top-level plots) as paths."""
    return [entry if isinstance(entry, str) else next(iter(entry)) for entry in entries]


def test_every_path_of_dvc_yaml_is_one_of_the_data_section() -> None:
    # dvc.yaml writes the paths out (DVC templating from a settings file would make each a
    # `dvc exp show` column); they are the `data` section the steps read, moved together
    for name, stage in DVC["stages"].items():
        for kind in ("outs", "metrics"):
            for path in _paths(stage.get(kind, [])):
                assert path in DATA_PATHS, f"{name}.{kind}: {path}"
        for dep in _paths(stage["deps"]):
            assert dep.startswith("src/") or dep in DATA_PATHS, dep
    assert set(_paths(DVC["plots"])) <= DATA_PATHS
    assert "${" not in (REPO_ROOT / "dvc.yaml").read_text()


def missing_modules(stage: str, deps: list[str]) -> list[str]:
    """Modules `python -m tweetops <stage>` imports that `deps` (files or folders) miss."""
    covered = [REPO_ROOT / dep for dep in deps]
    missing = []
    for path in stage_modules(STEP_MODULES[stage]):
        if not any(path == dep or dep in path.parents for dep in covered):
            missing.append(str(path.relative_to(REPO_ROOT)))
    return sorted(missing)


@pytest.mark.parametrize("stage", sorted(DVC["stages"]))
def test_each_stage_depends_on_every_module_it_imports(stage: str) -> None:
    assert missing_modules(stage, _paths(DVC["stages"][stage]["deps"])) == []


def test_a_stage_that_misses_an_imported_module_is_caught() -> None:
    deps = [
        dep for dep in _paths(DVC["stages"]["promote"]["deps"]) if dep != "src/tweetops/dataset.py"
    ]
    assert missing_modules("promote", deps) == ["src/tweetops/dataset.py"]
    # a module imported only lazily, inside a function, counts too
    ingest_deps = [
        dep for dep in _paths(DVC["stages"]["ingest"]["deps"]) if dep != "src/tweetops/ingest"
    ]
    assert "src/tweetops/ingest/xapi/search.py" in missing_modules(
        "ingest", [*ingest_deps, "src/tweetops/ingest/step.py"]
    )


def test_the_settings_files_hold_exactly_the_settings_sections() -> None:
    assert set(SETTINGS) == set(Settings.model_fields)
    for section, model in Settings.model_fields.items():
        assert model.annotation is not None
        assert set(SETTINGS[section]) == set(model.annotation.model_fields), section


def _pins(requirements: list[str]) -> dict[str, str]:
    pins = {}
    for requirement in requirements:
        name = re.split(r"[<>=!~ ]", requirement, maxsplit=1)[0].lower()
        pins[name] = requirement.split("#")[0].replace(" ", "")
    return pins


def test_python_env_and_conda_pin_what_pyproject_pins() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    expected = _pins(project["dependencies"])
    python_env = yaml.safe_load((REPO_ROOT / "python_env.yaml").read_text())
    conda = yaml.safe_load((REPO_ROOT / "conda.yaml").read_text())
    conda_pip = next(item["pip"] for item in conda["dependencies"] if isinstance(item, dict))
    assert _pins(python_env["dependencies"]) == expected
    assert _pins(conda_pip) == expected
    assert "openjdk=17" in conda["dependencies"]
