"""nbval regression tests: each daily notebook, executed by the runner on a deterministic sample,
is re-executed by nbval and must reproduce its own outputs (only the volatile bits listed in
``nbval_sanitize.cfg`` are sanitized)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import nbformat
import pytest

from conftest import REPO_ROOT

pytestmark = pytest.mark.slow

DAILY_NOTEBOOKS = ["01_data_quality", "02_transform", "04_monitoring"]


@pytest.mark.parametrize("name", DAILY_NOTEBOOKS)
def test_source_notebook_is_thin_and_clean(name):
    nb = nbformat.read(REPO_ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", []), "first code cell must be tagged 'parameters'"
    assert all(not c.outputs for c in code), "commit notebooks without outputs"
    assert sum(len(c.source.splitlines()) for c in code) < 100, "logic belongs in lib/puffy"


@pytest.mark.parametrize("name", [*DAILY_NOTEBOOKS, "03_executive_analysis"])
def test_every_chart_has_a_text_alternative(name):
    """A pyplot chart cell (``plt.show()``) carries an ``alt`` in its metadata,
    and every ``Image(...)`` an ``alt=``: the HTML report gives them to screen readers."""
    nb = nbformat.read(REPO_ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    charts = [c for c in code if "plt.show()" in c.source]
    assert all(c.metadata.get("alt", "").strip() for c in charts)
    images = [line for c in code for line in c.source.split("display(Image(")[1:]]
    assert all("alt=" in image.split("display(")[0] for image in images)
    assert charts or images


@pytest.mark.parametrize("name", [*DAILY_NOTEBOOKS, "03_executive_analysis"])
def test_a_notebook_is_parameters_one_stage_call_and_presentation(name):
    """The stage contract (puffy.stage): a notebook calls its stage's ``run`` once and never the
    runner that executes it; the stage resolves its defaults and writes its status."""
    nb = nbformat.read(REPO_ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    stage = {
        "01_data_quality": "dq",
        "02_transform": "transform",
        "04_monitoring": "monitoring",
        "03_executive_analysis": "report",
    }[name]
    assert source.count(f"{stage}.run(") == 1
    assert "puffy.runner" not in source and "write_status" not in source and "def " not in source


def _bound_names(source: str) -> set[str]:
    """Names a cell binds at its top level: assignments, imports, loop targets, ``with … as``."""
    import ast

    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
    return names


@pytest.mark.parametrize("name", [*DAILY_NOTEBOOKS, "03_executive_analysis"])
def test_no_cell_rebinds_a_parameter(name):
    """papermill sets the parameters before the first cell runs; a later cell that binds the same
    name silently replaces what the caller passed. (02_transform imported the function
    ``compare_identity_stitching`` over the flag of that name, so the daily run, which passes
    False, ran a second transform every day.)"""
    nb = nbformat.read(REPO_ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    parameters = _bound_names(code[0].source)
    rebound = {n for cell in code[1:] for n in _bound_names(cell.source) & parameters}
    assert not rebound, f"{name}: cells after the parameters rebind {sorted(rebound)}"


@pytest.mark.parametrize("name", DAILY_NOTEBOOKS)
def test_executed_notebook_reproduces_its_outputs(name, daily_run):
    layout, results = daily_run
    executed = [Path(s.notebook) for r in results for s in r.stages if s.stage == name]
    assert executed, f"{name} was not executed by the daily run"
    target = executed[-1]
    if name == "04_monitoring":
        _restore_staged_outputs(layout, date.fromisoformat(target.parent.name))
    nb = nbformat.read(target, as_version=4)
    assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), "executed notebook has no outputs"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval",
            str(target),
            "--nbval-sanitize-with",
            str(REPO_ROOT / "tests" / "nbval_sanitize.cfg"),
            "-p",
            "no:cacheprovider",
            "-q",
            "--nbval-current-env",
            "-o",
            "addopts=",
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def _restore_staged_outputs(layout, day: date) -> None:
    """Put back the staging warehouse 04 audited (the runner removes it once published): the
    partitions the day's transform wrote, as published — fct_sessions of the day before and the
    day, every other table of the day. Without it the re-executed notebook would audit nothing,
    or whatever a re-execution of 02 happened to leave there first."""
    staged = layout.staging_warehouse(day)
    for table_dir in sorted(p for p in layout.warehouse.iterdir() if p.is_dir()):
        days = (day - timedelta(days=1), day) if table_dir.name == "fct_sessions" else (day,)
        for d in days:
            src = table_dir / f"date={d.isoformat()}"
            if src.is_dir():
                shutil.rmtree(staged / table_dir.name / src.name, ignore_errors=True)
                shutil.copytree(src, staged / table_dir.name / src.name)
