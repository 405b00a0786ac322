"""End to end across parts: write–audit–publish through the runner, and the false-alarm test on a
clean generated month (neither the gate nor monitoring may raise an ERROR on healthy data)."""

from __future__ import annotations

import hashlib
import shutil
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml

from puffy import runner
from puffy.dq.gate import run_gate
from puffy.monitoring import run_monitoring
from puffy.params import DEFAULT_PARAMS_DIR, PipelineParams
from puffy.sample import SampleConfig, generate_sample
from puffy.transform.pipeline import run_transform

pytestmark = pytest.mark.slow


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_monitoring_error_quarantines_and_leaves_the_warehouse_untouched(tmp_path, daily_run):
    layout, results = daily_run
    published_before = _digest(layout.warehouse)
    assert published_before, "the daily run published nothing to protect"

    # Same inputs, but a funnel band no real day can meet, graded ERROR.
    params_dir = tmp_path / "params"
    shutil.copytree(DEFAULT_PARAMS_DIR, params_dir)
    rules_path = params_dir / "monitoring_rules.yaml"
    rules = yaml.safe_load(rules_path.read_text())
    rules["funnel"]["bands"]["product_view_rate"] = [0.999, 1.0]
    rules["funnel"]["band_severity"] = "error"
    rules_path.write_text(yaml.safe_dump(rules))
    strict = runner.RunLayout(layout.outputs_dir, layout.input_dir, params_dir)

    day = date.fromisoformat(results[-1].date)
    result = runner.run_day(day, strict)

    assert result.exit_code == runner.EXIT_MONITORING and result.stopped_at == "04_monitoring"
    assert not result.published
    quarantined = Path(result.quarantine_path)
    assert quarantined.name.startswith("warehouse_quarantine_") and quarantined.parent == layout.quarantine
    assert (quarantined / "fct_sessions" / f"date={day}" / "part-0.parquet").exists()
    note = layout.run_dir(day) / "quarantine_path.txt"
    assert note.read_text().strip() == str(quarantined)
    assert _digest(layout.warehouse) == published_before  # byte for byte

    # The next clean run of the same day publishes again, and changes nothing already published.
    again = runner.run_day(day, layout)
    assert again.published and again.exit_code == runner.EXIT_OK
    assert _digest(layout.warehouse) == published_before


def test_clean_generated_month_raises_no_error(tmp_path):
    start, days = date(2025, 1, 6), 28
    raw = tmp_path / "raw"
    generate_sample(
        raw,
        SampleConfig(
            start=start,
            days=days,
            scale=0.5,
            seed=23,
            faults=frozenset(),
            rename_client_id_from=None,
            drop_referrer_from=None,
        ),
    )
    staging, warehouse = tmp_path / "intermediate", tmp_path / "warehouse"
    gate = run_gate(raw, DEFAULT_PARAMS_DIR / "dq_rules.yaml", tmp_path / "dq", staging_root=staging)
    gate_errors = [f.id for f in gate.findings if f.severity == "error"]
    assert gate_errors == [], gate_errors

    end = start + timedelta(days=days - 1)
    transform = run_transform(
        staging, warehouse, DEFAULT_PARAMS_DIR, start=start, end=end, mode="rebuild", engine_params=PipelineParams()
    )
    assert transform.status != "error", transform.message

    alarms = {}
    for offset in range(days):
        day = start + timedelta(days=offset)
        result = run_monitoring(
            warehouse,
            DEFAULT_PARAMS_DIR / "monitoring_rules.yaml",
            tmp_path / "mon" / str(day),
            run_date=day,
            intermediate_dir=staging,
        )
        errors = [f.id for f in result.findings if f.severity == "error"]
        if errors:
            alarms[str(day)] = errors
    assert alarms == {}
