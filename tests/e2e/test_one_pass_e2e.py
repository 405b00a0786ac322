"""A one-pass backfill (``runner.run_range_one_pass``) against the day-by-day run of the same days
(the ``daily_run`` fixture), with the real notebooks: what must be the same is, and what differs is
only what README's *The scheduler* says differs."""

from __future__ import annotations

import filecmp
import json
from datetime import date

import pandas as pd
import pytest

from puffy import runner
from puffy.params import DEFAULT_PARAMS_DIR
from puffy.transform import TABLES
from puffy.warehouse import partition_files

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def one_pass(tmp_path_factory, small_sample):
    layout = runner.RunLayout(tmp_path_factory.mktemp("one_pass"), small_sample, DEFAULT_PARAMS_DIR)
    return layout, runner.run_range_one_pass(date(2025, 2, 25), date(2025, 2, 28), layout, progress=False)


def _report(path):
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc.pop("generated_at", None)
    doc.pop("inputs", None)  # the outputs directory's paths
    return doc


def test_each_day_has_the_outcome_and_stages_of_the_day_by_day_run(daily_run, one_pass):
    (_, by_day), (layout, passed) = daily_run, one_pass
    assert [(r.date, r.exit_code, r.published) for r in passed] == [(r.date, r.exit_code, r.published) for r in by_day]
    for a, b in zip(by_day, passed):
        assert [(s.stage, s.status) for s in a.stages] == [(s.stage, s.status) for s in b.stages]
        assert (layout.run_dir(date.fromisoformat(b.date)) / "run_summary.json").exists()


def test_the_fact_tables_are_the_same_bytes(daily_run, one_pass):
    (by_day, _), (passed, _) = daily_run, one_pass
    for table in TABLES:
        a, b = partition_files(by_day.warehouse, table), partition_files(passed.warehouse, table)
        assert [p.split("/")[-2] for p in a] == [p.split("/")[-2] for p in b] and a, table
        for x, y in zip(a, b):
            assert filecmp.cmp(x, y, shallow=False), f"{table} {x} differs"


def test_each_days_gate_report_is_the_day_by_day_runs(daily_run, one_pass):
    (by_day, results), (passed, _) = daily_run, one_pass
    for r in results:
        day = date.fromisoformat(r.date)
        assert _report(by_day.run_dir(day) / "dq_report.json") == _report(passed.run_dir(day) / "dq_report.json")


def test_channel_credit_differs_only_in_the_stitched_identity_and_reconciliation_is_one_per_transform(
    daily_run, one_pass
):
    (by_day, results), (passed, _) = daily_run, one_pass
    for a, b in zip(
        partition_files(by_day.warehouse, "rpt_channel_credit"), partition_files(passed.warehouse, "rpt_channel_credit")
    ):
        strict_a, strict_b = (pd.read_parquet(f).query("identity == 'strict'").reset_index(drop=True) for f in (a, b))
        pd.testing.assert_frame_equal(strict_a, strict_b)
    assert len(partition_files(by_day.warehouse, "rpt_reconciliation")) == len(results)
    assert [p.split("/")[-2] for p in partition_files(passed.warehouse, "rpt_reconciliation")] == ["date=2025-02-28"]


def test_each_days_audit_has_the_day_by_day_findings(daily_run, one_pass):
    (by_day, results), (passed, _) = daily_run, one_pass
    for r in results:
        day = date.fromisoformat(r.date)
        a, b = (_report(layout.run_dir(day) / "monitoring_report.json") for layout in (by_day, passed))
        assert a["status"] == b["status"]
        assert [(f["id"], f.get("metric"), f["severity"]) for f in a["findings"]] == [
            (f["id"], f.get("metric"), f["severity"]) for f in b["findings"]
        ]
