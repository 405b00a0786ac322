"""pyproject.toml and environment.yml must declare the same dependencies; the lock must pin them."""

import tomllib

import yaml
from packaging.requirements import Requirement

from conftest import REPO_ROOT


def _pyproject_requirements() -> set[str]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    reqs = list(project["dependencies"]) + list(extras["dev"]) + list(extras["spark"])
    return {str(Requirement(r)) for r in reqs}


def _conda_pip_requirements() -> set[str]:
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return {str(Requirement(r)) for r in pip_section if not r.startswith("-e")}


def test_environment_yml_mirrors_pyproject():
    py, conda = _pyproject_requirements(), _conda_pip_requirements()
    assert py - conda == set(), f"in pyproject.toml but not environment.yml: {sorted(py - conda)}"
    assert conda - py == set(), f"in environment.yml but not pyproject.toml: {sorted(conda - py)}"


def test_lock_pins_every_declared_dependency_within_its_range():
    pins = {}
    for line in (REPO_ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    for text in _pyproject_requirements():
        req = Requirement(text)
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"{name} is declared but not pinned in constraints.txt (run `make lock`)"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} violates {req}"


def test_fragile_pins_hold():
    """ibis 12.0 emits a nameless DROP VIEW with sqlglot >= 30.18."""
    reqs = {Requirement(r).name: Requirement(r) for r in _pyproject_requirements()}
    assert not reqs["sqlglot"].specifier.contains("30.18.0")
    assert reqs["ibis-framework"].specifier.contains("12.0.0")
