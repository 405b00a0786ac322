"""Monitoring's stage entry, ``puffy.monitoring.run`` (the contract: ``puffy.stage``)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from puffy.errors import InputDataError, UserError
from puffy.monitoring.audit import run_monitoring
from puffy.stage import Layout, Period, StageResult
from puffy.warehouse import newest_warehouse, partition_dates


def run(
    layout: Layout,
    period: Period | None = None,
    *,
    warehouse: str | Path | None = None,
    output_dir: str | Path | None = None,
    now: datetime | None = None,
) -> StageResult:
    """Audit one day (``period`` of one day; None: the audited warehouse's latest ``fct_sessions``
    partition) of ``warehouse`` against the published history (``layout.warehouse``). ``warehouse``
    None: the newer of a hand-run transform's build warehouse and the published one. Writes
    ``monitoring_report.json`` / ``.md`` into ``output_dir`` (default: the layout's ad-hoc run
    directory). ``value`` is the ``MonitoringResult``."""
    audited = Path(warehouse) if warehouse is not None else newest_warehouse([layout.warehouse, layout.build_warehouse])
    if not isinstance(audited, Path):  # the published warehouse in object storage: audited only before publishing
        raise UserError(
            f"{audited}: monitoring audits a local warehouse (the daily runner audits each day's "
            f"staging warehouse before publishing it there); set warehouse_root in the parameters cell"
        )
    if period is None:
        available = partition_dates(audited, "fct_sessions")
        if not available:
            raise InputDataError(
                f"no fct_sessions partitions under {audited}: run 01_data_quality and 02_transform "
                "first, or set run_date and warehouse_root in the parameters cell"
            )
        period = Period.of(available[-1])
    if period.start != period.end:
        raise UserError(f"monitoring audits one day at a time, not {period.label}")
    result = run_monitoring(
        audited,
        layout.params_dir / "monitoring_rules.yaml",
        Path(output_dir) if output_dir else layout.adhoc_run_dir,
        run_date=period.start,
        history_dir=layout.warehouse,
        intermediate_dir=layout.intermediate if layout.intermediate.is_dir() else None,
        now=now,
    )
    written = {**result.report_paths, "audited": audited}
    return StageResult("monitoring", result.status, result.report.get("message", ""), written, result)
