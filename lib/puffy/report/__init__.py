"""Part 3: the executive summary of a period — HTML report and a 1–2 page PDF.

``run_report(outputs_dir, params_dir, start=None, end=None, warehouse_dir=None)`` is what
``puffy report`` and ``puffy demo`` call:

1. resolve the period (default: the last ``period_days`` days in the published warehouse:
   ``warehouse_dir``, default that of ``params/pipeline.yaml``, else ``outputs_dir/warehouse``; a
   local directory or object storage, ``s3://bucket/warehouse``) — a period the warehouse cannot
   serve stops here with a one-line ``UserError``;
2. execute ``notebooks/03_executive_analysis.ipynb`` with papermill into
   ``outputs_dir/reports/<start>_<end>/``; the notebook calls :func:`build_report` (figures,
   narrative, caveats), shows them, and :func:`write_outputs` writes the PDF and ``kpis.json``;
3. render the executed notebook to ``executive_summary.html`` without code (nbconvert);
4. refresh ``outputs_dir/index.html``.

Modules: ``params`` (report.yaml), ``data`` (period, tables, findings), ``kpis`` (figures), ``stats`` (intervals,
tests, regression), ``narrative`` (sentences and caveats), ``charts`` (seaborn), ``pdf``
(print HTML → WeasyPrint).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from puffy.errors import UserError
from puffy.report.params import load_report_params
from puffy.stage import Layout, repo_path
from puffy.storage import Location

if TYPE_CHECKING:  # data imports DuckDB and pandas, figures and narrative SciPy and statsmodels: only used
    # when a report is built, not when `puffy run` validates report.yaml (puffy.report.params)
    from puffy.report.data import PeriodData
    from puffy.report.kpis import Figures
    from puffy.report.narrative import Narrative

__all__ = [
    "Report",
    "ReportError",
    "ReportResult",
    "build_report",
    "default_output_dir",
    "kpi_summary",
    "published_warehouse",
    "run",
    "run_report",
    "write_outputs",
]

NOTEBOOK = "03_executive_analysis"
HTML_NAME, PDF_NAME, PRINT_HTML_NAME, KPIS_NAME = (
    "executive_summary.html",
    "executive_summary.pdf",
    "executive_summary_print.html",
    "kpis.json",
)


class ReportError(UserError):
    """The report could not be produced (the notebook failed); exit code 6, as documented."""

    exit_code = 6


@dataclass
class Report:
    """Everything one executive summary shows."""

    data: PeriodData
    figures: Figures
    narrative: Narrative

    @property
    def label(self) -> str:
        return self.data.period.label


@dataclass
class ReportResult:
    html: Path
    pdf: Path
    kpis: dict


def published_warehouse(
    outputs_dir: str | Path, params_dir: str | Path, warehouse_dir: str | Path | Location | None = None
) -> Path | Location:
    """The warehouse the report reads: ``warehouse_dir`` (a path or an object-store URI), else
    ``params_dir``'s pipeline.yaml ``warehouse_dir``, else ``<outputs_dir>/warehouse``
    (``Layout.warehouse``, as the daily run publishes)."""
    return Layout.resolve(params_dir, outputs_dir, warehouse_dir=warehouse_dir).warehouse


def build_report(
    outputs_dir: str | Path,
    params_dir: str | Path,
    start=None,
    end=None,
    warehouse: str | Path | Location | None = None,
) -> Report:
    """Load the period, compute every figure, size the data caveats, derive the narrative.

    The tables come from ``warehouse`` (None: ``published_warehouse``), read through one snapshot
    of it; the runs' findings and the intermediate layer from ``outputs_dir``."""
    from puffy.report.data import load_period, pin_warehouse, resolve_period
    from puffy.report.kpis import compute_figures
    from puffy.report.narrative import build_narrative, data_caveats

    outputs_dir, params_dir = repo_path(outputs_dir), repo_path(params_dir)
    params = load_report_params(params_dir)
    wh = pin_warehouse(published_warehouse(outputs_dir, params_dir, warehouse))
    period = resolve_period(wh, start, end, params.period_days, params.previous_period_min_coverage)
    data = load_period(outputs_dir, period, wh)
    figures = compute_figures(data, params)
    figures.caveats = data_caveats(data, figures)
    return Report(data, figures, build_narrative(figures))


def _json_number(x):
    if x is None or (isinstance(x, float) and (math.isnan(x) or math.isinf(x))):
        return None
    return round(x, 6) if isinstance(x, float) else x


def kpi_summary(fig: Figures) -> dict:
    """The headline KPIs as plain JSON-able values (``ReportResult.kpis`` and ``kpis.json``)."""
    out = {"start": fig.period.start.isoformat(), "end": fig.period.end.isoformat(), "days": fig.period.days}
    for name, k in fig.kpis.items():
        out[name] = _json_number(k["value"])
        out[f"{name}_previous"] = _json_number(k["previous"])
        out[f"{name}_change_pct"] = _json_number(k["change_pct"])
    out["purchasing_sessions"] = fig.current["purchasing_sessions"]
    out["previous_period"] = (
        None if fig.previous is None else [fig.period.previous_start.isoformat(), fig.period.previous_end.isoformat()]
    )
    return out


def write_outputs(report: Report, output_dir: str | Path) -> dict[str, Path]:
    """Write the PDF (and the print HTML it was made from) and ``kpis.json`` into ``output_dir``."""
    from puffy.report.pdf import write_pdf

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    pdf = write_pdf(report.figures, report.narrative, output_dir / PDF_NAME)
    (output_dir / PRINT_HTML_NAME).write_text(pdf.html, encoding="utf-8")
    kpis = {**kpi_summary(report.figures), "pdf_pages": pdf.pages, "pdf_compact_layout": pdf.compact}
    (output_dir / KPIS_NAME).write_text(json.dumps(kpis, indent=2) + "\n", encoding="utf-8")
    return {"pdf": pdf.path, "print_html": output_dir / PRINT_HTML_NAME, "kpis": output_dir / KPIS_NAME}


def default_output_dir(outputs_dir: str | Path, report: Report) -> Path:
    """``<outputs_dir>/reports/<start>_<end>``: where ``run_report`` puts the period's report."""
    return repo_path(outputs_dir) / "reports" / report.label


def run_report(
    outputs_dir: str | Path,
    params_dir: str | Path,
    start=None,
    end=None,
    warehouse_dir: str | Path | Location | None = None,
) -> ReportResult:
    """Execute the executive-summary notebook for the period and render its HTML and PDF.

    The tables come from ``warehouse_dir`` (None: ``published_warehouse``: pipeline.yaml's, else
    ``<outputs_dir>/warehouse``); the report is written under ``outputs_dir`` (always local)."""
    import logging

    from puffy import runner
    from puffy.report.data import resolve_period
    from puffy.run_index import write_index

    log = logging.getLogger("puffy.report")
    outputs_dir, params_dir = Path(outputs_dir).resolve(), Path(params_dir).resolve()
    params = load_report_params(params_dir)
    warehouse = published_warehouse(outputs_dir, params_dir, warehouse_dir)
    period = resolve_period(warehouse, start, end, params.period_days, params.previous_period_min_coverage)
    out_dir = outputs_dir / "reports" / period.label
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in (HTML_NAME, PDF_NAME, PRINT_HTML_NAME, KPIS_NAME):  # never show a stale report
        (out_dir / name).unlink(missing_ok=True)
    t0 = time.perf_counter()
    try:
        executed = runner.execute_notebook(
            NOTEBOOK,
            out_dir,
            {
                "start_date": period.start.isoformat(),
                "end_date": period.end.isoformat(),
                "outputs_dir": str(outputs_dir),
                "params_dir": str(params_dir),
                "warehouse_dir": str(warehouse),
                "output_dir": str(out_dir),
            },
        )
    except Exception as exc:  # a failing cell: one line, the executed notebook stays for inspection
        error = runner.notebook_error(exc)
        raise ReportError(f"{NOTEBOOK} failed: {error} (see {out_dir / (NOTEBOOK + '.ipynb')})") from None
    rendered = runner.render_html(executed, no_input=True)
    html = out_dir / HTML_NAME
    rendered.replace(html)
    pdf = out_dir / PDF_NAME
    if not pdf.exists():
        raise ReportError(f"{NOTEBOOK} ran but wrote no {PDF_NAME} in {out_dir}")
    kpis = json.loads((out_dir / KPIS_NAME).read_text(encoding="utf-8"))
    log.info("executive summary %s in %.1fs (%s pages)", period.label, time.perf_counter() - t0, kpis.get("pdf_pages"))
    write_index(outputs_dir)
    return ReportResult(html, pdf, kpis)


from puffy.report.stage import run  # noqa: E402  (the stage entry builds on the functions above)
