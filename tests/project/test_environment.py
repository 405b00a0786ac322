"""pyproject.toml and environment.yml must declare the same dependencies; the lock must pin them, and
environment.yml must install the lock's versions (conda is not installed here: the file is checked
structurally, not solved)."""

import tomllib

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from conftest import REPO_ROOT


def _pyproject_requirements() -> set[str]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    reqs = list(project["dependencies"]) + list(extras["dev"]) + list(extras["spark"])
    return {str(Requirement(r)) for r in reqs}


#: conda-forge package name -> PyPI name, where they differ.
CONDA_TO_PYPI = {"python-duckdb": "duckdb", "matplotlib-base": "matplotlib"}
#: conda-forge packages that are not Python distributions (system libraries pip cannot install).
SYSTEM_PACKAGES = {"python", "pip", "pango", "openjdk"}


def _norm(name: str) -> str:
    return name.lower().replace("_", "-")


def _environment() -> dict:
    return yaml.safe_load((REPO_ROOT / "environment.yml").read_text())


def _conda_specs() -> dict[str, str]:
    """conda dependencies (not pip's): name -> version spec text."""
    specs = {}
    for dep in _environment()["dependencies"]:
        if isinstance(dep, str):
            name, _, version = dep.partition("=")
            specs[name.strip()] = version.lstrip("=").strip()
    return specs


def _pip_lines() -> list[str]:
    return next(d["pip"] for d in _environment()["dependencies"] if isinstance(d, dict) and "pip" in d)


def _lock() -> dict[str, str]:
    pins = {}
    for line in (REPO_ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[_norm(name.strip())] = version.strip()
    return pins


def _conda_python_packages() -> dict[str, str]:
    """PyPI name -> pinned version of every Python package environment.yml takes from conda-forge."""
    return {
        _norm(CONDA_TO_PYPI.get(name, name)): version
        for name, version in _conda_specs().items()
        if name not in SYSTEM_PACKAGES
    }


def _pip_requirements() -> set[str]:
    return {str(Requirement(r)) for r in _pip_lines() if not r.startswith("-")}


def test_environment_yml_mirrors_pyproject():
    """Every declared dependency comes from exactly one of conda-forge or pip, and nothing else is listed."""
    declared = {_norm(Requirement(r).name): Requirement(r) for r in _pyproject_requirements()}
    from_conda = set(_conda_python_packages())
    from_pip = {_norm(Requirement(r).name) for r in _pip_requirements()}
    assert from_conda & from_pip == set(), f"listed for both conda and pip: {sorted(from_conda & from_pip)}"
    listed = from_conda | from_pip
    assert set(declared) - listed == set(), (
        f"in pyproject.toml but not environment.yml: {sorted(set(declared) - listed)}"
    )
    assert listed - set(declared) == set(), (
        f"in environment.yml but not pyproject.toml: {sorted(listed - set(declared))}"
    )
    for text in _pip_requirements():  # pip lines keep pyproject's spelling (extras and ranges)
        assert text in {str(r) for r in declared.values()}, f"{text} differs from pyproject.toml"


def test_conda_packages_are_pinned_to_the_lock():
    """Before: everything came from pip without the lock; a conda user resolved 9 packages differently."""
    lock = _lock()
    declared = {_norm(Requirement(r).name): Requirement(r) for r in _pyproject_requirements()}
    for name, version in _conda_python_packages().items():
        assert version == lock[name], f"environment.yml pins {name} {version!r}, the lock {lock[name]}"
        assert declared[name].specifier.contains(version, prereleases=True)


def test_pip_part_honours_the_lock_and_installs_the_checkout():
    lines = _pip_lines()
    assert lines[0] in ("-c constraints.txt", "--constraint constraints.txt"), "the pip part must read the lock"
    assert "-e ." in lines


def test_the_conda_route_brings_the_system_libraries():
    """Before: Pango (PDF) and a Java runtime (Spark) were left to the user."""
    env = _environment()
    assert env["channels"][0] == "conda-forge" and "defaults" not in env["channels"]
    specs = _conda_specs()
    assert "pango" in specs and specs.get("openjdk") in ("17", "21")
    requires = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert SpecifierSet(requires).contains(specs["python"] + ".0")


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
