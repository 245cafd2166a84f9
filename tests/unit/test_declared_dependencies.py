"""Every third-party module the project imports comes from a distribution pyproject.toml names:
the service's code from [project].dependencies, tests and benchmarks from those or the dev group.
An import that works only because something else happened to pull it in breaks a fresh install."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = {"orchestrator", "connectors", "tests", "bench", "migrations"}


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> tuple[set[str], set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())

    def names(specs: list[str]) -> set[str]:
        return {_normalised(re.match(r"[A-Za-z0-9_.\-]+", spec).group()) for spec in specs}  # type: ignore[union-attr]

    return names(project["project"]["dependencies"]), names(project["dependency-groups"]["dev"])


def third_party_imports(folder: str) -> dict[str, str]:
    """Top-level module → the first file importing it, for every import outside the project."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                local = (path.parent / f"{top}.py").exists() or (path.parent / top).is_dir()
                if top in sys.stdlib_module_names or top in FIRST_PARTY or top == "__future__" or local:
                    continue
                found.setdefault(top, str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize(
    ("folder", "dev_allowed"),
    [("orchestrator", False), ("connectors", False), ("migrations", False), ("tests", True), ("bench", True)],
)
def test_every_third_party_import_is_a_declared_dependency(folder: str, dev_allowed: bool) -> None:
    runtime, dev = _declared()
    allowed = runtime | dev if dev_allowed else runtime
    providers = packages_distributions()
    undeclared = {
        f"{module} ({where})": sorted(providers.get(module, ["<not installed>"]))
        for module, where in third_party_imports(folder).items()
        if not {_normalised(d) for d in providers.get(module, [])} & allowed
    }
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"
