"""What the daily run publishes and reports is pinned: a refactor or a speed-up must not change it.

``puffy run`` over the real export (14 days) and over a generated month (28 days, all faults, scale
0.5, seed 5) is reduced to digests (``support.golden``): every published Parquet file (its rows
and its bytes), every report and status JSON / Markdown of every day (clocks, durations and paths
removed) and every day's exit code. The digests were taken from the code before the stage-contract
work (issue 18) and are compared here, file by file.

A change that is meant to alter results updates the pinned digests in the same commit, and its
message says which files changed and why:

    PUFFY_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/e2e/test_no_behaviour_change.py
"""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from puffy import runner
from puffy.params import DEFAULT_PARAMS_DIR
from support.golden import diff, snapshot

GOLDEN = REPO_ROOT / "tests" / "golden"
MONTH = {"start": date(2025, 2, 23), "days": 28, "scale": 0.5, "seed": 5}


def _snapshot(outputs: Path, input_dir: Path) -> dict:
    return snapshot(
        outputs, {str(input_dir): "<input>", str(input_dir.resolve()): "<input>", str(REPO_ROOT): "<project>"}
    )


def _check(name: str, outputs: Path, input_dir: Path) -> None:
    got = _snapshot(outputs, input_dir)
    path = GOLDEN / f"{name}.json"
    if os.environ.get("PUFFY_UPDATE_GOLDEN"):
        path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        pytest.skip(f"rewrote {path}")
    pinned = json.loads(path.read_text(encoding="utf-8"))
    assert got["tables"], "the run published nothing"
    differences = diff(pinned, got)
    assert not differences, f"{len(differences)} difference(s) from {path.name}:\n" + "\n".join(differences[:40])


def _check_one_pass(name: str, outputs: Path, input_dir: Path) -> None:
    """A one-pass backfill against the day-by-day run's pinned snapshot: the same exit codes, fact
    tables and gate reports (README, The scheduler: what else differs, and why)."""
    got = _snapshot(outputs, input_dir)
    pinned = json.loads((GOLDEN / f"{name}.json").read_text(encoding="utf-8"))
    assert got["exit_codes"] == pinned["exit_codes"]
    facts = {k: v for k, v in pinned["tables"].items() if k.startswith("fct_")}
    assert facts and {k: got["tables"].get(k) for k in facts} == facts
    gates = {k: v for k, v in pinned["reports"].items() if "/dq_report." in k}
    assert gates and {k: got["reports"].get(k) for k in gates} == gates


def _run(raw: Path, outputs: Path, start: date, end: date, one_pass: bool = False) -> list[runner.DayResult]:
    layout = runner.RunLayout(outputs, raw, DEFAULT_PARAMS_DIR)
    run_range = runner.run_range_one_pass if one_pass else runner.run_range
    return run_range(start, end, layout, progress=False)


def _month(tmp_path: Path) -> tuple[Path, date, date]:
    """The pinned generated month: its raw files, first and last day."""
    from puffy.sample import SampleConfig, generate_sample

    raw = tmp_path / "raw"
    generate_sample(
        raw, SampleConfig(start=MONTH["start"], days=MONTH["days"], scale=MONTH["scale"], seed=MONTH["seed"])
    )
    return raw, MONTH["start"], date.fromordinal(MONTH["start"].toordinal() + MONTH["days"] - 1)


@pytest.mark.slow
@pytest.mark.real_data
def test_the_real_export_publishes_and_reports_what_it_did(real_data_dir, tmp_path):
    results = _run(real_data_dir, tmp_path / "outputs", date(2025, 2, 23), date(2025, 3, 8))
    assert all(r.published for r in results)
    _check("real_export", tmp_path / "outputs", real_data_dir)


@pytest.mark.slow
def test_a_generated_month_publishes_and_reports_what_it_did(tmp_path):
    raw, start, end = _month(tmp_path)
    _run(raw, tmp_path / "outputs", start, end)
    _check("generated_month", tmp_path / "outputs", raw)


@pytest.mark.slow
@pytest.mark.real_data
def test_the_real_export_in_one_pass_publishes_the_same_facts_and_gate_reports(real_data_dir, tmp_path):
    _run(real_data_dir, tmp_path / "outputs", date(2025, 2, 23), date(2025, 3, 8), one_pass=True)
    _check_one_pass("real_export", tmp_path / "outputs", real_data_dir)


@pytest.mark.slow
def test_a_generated_month_in_one_pass_publishes_the_same_facts_and_gate_reports(tmp_path):
    raw, start, end = _month(tmp_path)
    _run(raw, tmp_path / "outputs", start, end, one_pass=True)
    _check_one_pass("generated_month", tmp_path / "outputs", raw)
