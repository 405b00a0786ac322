"""The executive summary's stage entry, ``puffy.report.run`` (the contract: ``puffy.stage``)."""

from __future__ import annotations

from pathlib import Path

from puffy.stage import Layout, Period, StageResult


def run(layout: Layout, period: Period | None = None, *, output_dir: str | Path | None = None) -> StageResult:
    """Build the executive summary of ``period`` (None: the last ``period_days`` of the published
    warehouse, params/report.yaml) and write its PDF, print HTML and ``kpis.json`` into
    ``output_dir`` (default: ``<outputs>/reports/<start>_<end>``). ``value`` is the ``Report``.
    The tables are read from ``layout.warehouse`` (local or object storage).

    A period the warehouse cannot serve is a ``UserError``; the summary has no warn or error
    status of its own (what is wrong with the data is on its page 1, from the stages' reports)."""
    from puffy.report import build_report, default_output_dir, write_outputs

    report = build_report(
        layout.outputs_dir,
        layout.params_dir,
        start=period.start if period else None,
        end=period.end if period else None,
        warehouse=layout.warehouse,
    )
    output_dir = Path(output_dir) if output_dir is not None else default_output_dir(layout.outputs_dir, report)
    return StageResult("report", "pass", report.label, write_outputs(report, output_dir), report)
