"""One name per step everywhere: MLproject entry point = CLI command = DVC stage = params section.

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
from tweetops.settings import Settings

MLPROJECT = yaml.safe_load((REPO_ROOT / "MLproject").read_text())
DVC = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())
PARAMS = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
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
    assert list(stages) == ["ingest", "features", "train", "promote"]
    for name, stage in stages.items():
        assert stage["cmd"] == f"python -m tweetops {name}"
        for dep in _paths(stage["deps"]):
            assert (REPO_ROOT / dep).exists() or dep.startswith(("data/", "reports/")), dep


def read_keys(section: str) -> tuple[set[str], set[str]]:
    """What the step of `section` reads: (`section.key` params, `data.<key>` paths it names).

    Every key of the section is read by its step; the keys whose value refers to the `data`
    section reach the stage through DVC's `${data.<key>}` templating instead of `params:`.
    """
    params, paths = set(), set()
    model = Settings.model_fields[section].annotation
    assert model is not None
    for key in model.model_fields:
        value = PARAMS[section][key]
        if isinstance(value, str) and value.startswith("$data."):
            paths.add(value.removeprefix("$"))
        else:
            params.add(f"{section}.{key}")
    return params, paths


@pytest.mark.parametrize("name", sorted(DVC["stages"]))
def test_each_stage_declares_exactly_the_keys_its_step_reads(name: str) -> None:
    stage = DVC["stages"][name]
    declared = {entry for entry in stage["params"] if isinstance(entry, str)}
    params, paths = read_keys(name)
    assert declared == params
    # each folder or report the step names is one the stage tracks (or lies inside one)
    templated = re.findall(r"\$\{(data\.\w+)\}", yaml.safe_dump(stage))
    tracked = [REPO_ROOT / PARAMS["data"][key.split(".")[1]] for key in templated]
    for path in paths:
        target = REPO_ROOT / PARAMS["data"][path.split(".")[1]]
        assert any(target == t or t in target.parents for t in tracked), f"{name}: {path}"


def test_read_keys_are_the_section_but_its_templated_paths() -> None:
    params, _ = read_keys("train")
    assert "train.num_trees" in params and "train.tuned_from" in params
    assert "train.training_rows_dir" not in params  # $data.training_rows: a templated path


def _paths(entries: list) -> list[str]:
    """Stage deps/outs as paths, DVC's ${data.<key>} templating resolved from params.yaml."""
    paths = [entry if isinstance(entry, str) else next(iter(entry)) for entry in entries]
    return [
        re.sub(r"\$\{data\.(\w+)\}", lambda m: PARAMS["data"][m.group(1)], path) for path in paths
    ]


def test_every_path_of_dvc_yaml_comes_from_the_data_section() -> None:
    for name, stage in DVC["stages"].items():
        for kind in ("outs", "metrics"):
            for path in (
                entry if isinstance(entry, str) else next(iter(entry))
                for entry in stage.get(kind, [])
            ):
                assert re.fullmatch(r"\$\{data\.\w+\}", path), f"{name}.{kind}: {path}"
        for dep in stage["deps"]:
            dep = dep if isinstance(dep, str) else next(iter(dep))
            assert dep.startswith("src/") or re.fullmatch(r"\$\{data\.\w+\}", dep), dep


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


def test_params_yaml_sections_are_exactly_the_settings_sections() -> None:
    assert set(PARAMS) == set(Settings.model_fields)


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
