"""The gate's stage entry, ``puffy.dq.run`` (the contract: ``puffy.stage``)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from puffy.dq.gate import run_gate
from puffy.stage import Layout, Period, StageResult


def run(
    layout: Layout, period: Period | None = None, *, output_dir: str | Path | None = None, now: datetime | None = None
) -> StageResult:
    """Gate the raw files of ``period`` (None: every file in ``layout.input_dir``), write
    ``dq_report.json`` / ``.md`` into ``output_dir`` (default: the layout's ad-hoc run directory) and
    stage the in-range days' events under ``layout.intermediate``. ``value`` is the ``GateResult``."""
    output_dir = Path(output_dir) if output_dir is not None else layout.adhoc_run_dir
    result = run_gate(
        layout.input_dir,
        layout.params_dir / "dq_rules.yaml",
        output_dir,
        start=period.start if period else None,
        end=period.end if period else None,
        staging_root=layout.intermediate,
        now=now,
        engine_params=layout.pipeline,
    )
    return StageResult("dq", result.status, result.report.get("message", ""), result.report_paths, result)
