"""Which of the package's modules a stage runs: the import graph of src/tweetops, read with ast."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

from tests.conftest import REPO_ROOT

SRC = REPO_ROOT / "src"
PACKAGE = "tweetops"


def module_file(name: str) -> Path | None:
    """The source file of module `name` of the package, or None when it is not one."""
    base = SRC.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _with_parents(name: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[:end]) for end in range(1, len(parts) + 1)}


@cache
def direct_imports(name: str, skip_functions_ending: str = "") -> frozenset[str]:
    """Package modules that module `name` imports anywhere in its source (lazy imports too).

    Imports inside functions whose name ends with `skip_functions_ending` are left out.
    """
    path = module_file(name)
    assert path is not None, name
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    if skip_functions_ending:
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name.endswith(skip_functions_ending):
                skipped.update(id(child) for child in ast.walk(node))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    modules: set[str] = set()
    for item in found:
        if item.split(".")[0] == PACKAGE and module_file(item) is not None:
            modules.update(
                parent for parent in _with_parents(item) if module_file(parent) is not None
            )
    return frozenset(modules)


CLI_MODULE = "tweetops.cli"


def closure(*roots: str) -> set[str]:
    """`roots` and every package module they import, transitively.

    The CLI imports each step by name when its command runs (`importlib`) or inside a
    `*_command` function; neither is followed, so a stage's closure holds the CLI shell but not
    the other steps.
    """
    seen: set[str] = set()
    todo = [parent for root in roots for parent in _with_parents(root)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        skip = "_command" if name == CLI_MODULE else ""
        todo.extend(direct_imports(name, skip_functions_ending=skip) - seen)
    return seen


def stage_modules(step_module: str) -> set[Path]:
    """Source files `python -m tweetops <step>` runs: the CLI shell and the step's closure."""
    names = closure("tweetops.__main__", step_module)
    return {module_file(name) for name in names}  # type: ignore[misc]
