"""notebooks/04_monitoring.ipynb: thin, clean, and runnable with papermill on a hand-made warehouse."""

from __future__ import annotations

import json

import nbformat
import pytest

from conftest import REPO_ROOT
from support.monitoring_warehouse import DaySpec, build_warehouse, write_day

NOTEBOOK = REPO_ROOT / "notebooks" / "04_monitoring.ipynb"
PARAMETERS = {
    *("run_date", "params_dir", "outputs_dir", "warehouse_dir", "warehouse_root", "output_dir", "now"),
    *("each_day", "start_date", "end_date"),  # a one-pass backfill's audit of each day (tests/e2e/test_one_pass_e2e.py)
}


def test_notebook_is_thin_clean_and_parameterised():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", [])
    names = {
        line.split("=")[0].strip() for line in code[0].source.splitlines() if "=" in line and not line.startswith("#")
    }
    assert names == PARAMETERS
    assert all(not c.outputs and c.execution_count is None for c in code), "clear outputs before saving"
    assert sum(len(c.source.splitlines()) for c in code) < 100


@pytest.mark.slow
def test_notebook_runs_and_writes_the_report_the_runner_reads(tmp_path):
    import papermill as pm

    warehouse, intermediate, days = build_warehouse(tmp_path / "data", 15)
    write_day(warehouse, intermediate, days[-1], DaySpec(null_rate=0.2))
    out = tmp_path / "run"
    pm.execute_notebook(
        str(NOTEBOOK),
        str(tmp_path / "executed.ipynb"),
        cwd=str(REPO_ROOT),
        kernel_name="python3",
        progress_bar=False,
        parameters={
            "run_date": days[-1].isoformat(),
            "output_dir": str(out),
            "outputs_dir": str(tmp_path / "data"),
            "warehouse_root": str(warehouse),
            "now": "2030-01-01T00:00:00+00:00",
        },
    )
    report = json.loads((out / "monitoring_report.json").read_text())
    assert report["status"] == "warn" and report["generated_at"] == "2030-01-01T00:00:00+00:00"
    # stale partitions (now is years later) and the null spike, both warnings
    assert {"freshness.partition_stale", "trend.client_id_null_rate"} <= {f["id"] for f in report["findings"]}
    executed = nbformat.read(tmp_path / "executed.ipynb", as_version=4)
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "the metric charts are drawn"
