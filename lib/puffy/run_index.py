"""``outputs/index.html``: the page people bookmark — every run date with its gate and monitoring
status and links to its reports, plus the executive summaries that exist."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

from puffy.findings import PROBLEMS

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:64rem;color:#1f2933}
h1{font-size:1.5rem;margin-bottom:.25rem} p.sub{color:#52606d;margin-top:0}
table{border-collapse:collapse;width:100%;margin:1rem 0}
th,td{padding:.45rem .6rem;border-bottom:1px solid #e4e7eb;text-align:left}
th{background:#f5f7fa;font-weight:600} .pass{color:#1e7b34;font-weight:600} .warn{color:#a66300;font-weight:600}
.error{color:#b42318;font-weight:700} .none{color:#9aa5b1} a{color:#1c64f2}
"""


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _status_cell(data: dict | None) -> str:
    if not data:
        return '<td class="none">—</td>'
    status = str(data.get("status", "?")).lower()
    return f'<td class="{html.escape(status)}">{html.escape(status.upper())}</td>'


def _link(path: Path, base: Path, label: str) -> str:
    if not path.exists():
        return ""
    return f'<a href="{html.escape(os.path.relpath(path, base))}">{html.escape(label)}</a>'


def _incident_cell(*reports: dict | None) -> str:
    """What is new today (ids of new warnings and errors) apart from what persists (a count)."""
    raised = [f for r in reports if r for f in r.get("findings", []) if f.get("severity") in PROBLEMS]
    new = sorted(
        {
            f["id"] + (f" ({f['metric']})" if f["id"].startswith("segment.") and f.get("metric") else "")
            for f in raised
            if f.get("state") == "new"
        }
    )
    ongoing = sum(1 for f in raised if f.get("state") == "ongoing")
    parts = [("new: " + ", ".join(new)) if new else "nothing new"]
    if ongoing:
        parts.append(f"{ongoing} ongoing")
    return f"<td>{html.escape('; '.join(parts))}</td>"


def _notebook_html(run_dir: Path, summary: dict, notebook: str) -> Path:
    """The day's rendering of ``notebook``: in its run directory, or the range notebook of a
    one-pass backfill that ran it (``run_summary.json`` names it)."""
    for stage in summary.get("stages", []):
        if stage.get("stage") == notebook and stage.get("html") and not (run_dir / f"{notebook}.html").exists():
            return Path(stage["html"])
    return run_dir / f"{notebook}.html"


def _run_row(run_dir: Path, base: Path) -> str:
    summary = _read_json(run_dir / "run_summary.json") or {}
    links = " · ".join(
        x
        for x in (
            _link(_notebook_html(run_dir, summary, "01_data_quality"), base, "data quality"),
            _link(run_dir / "dq_report.md", base, "dq.md"),
            _link(_notebook_html(run_dir, summary, "02_transform"), base, "transform"),
            _link(_notebook_html(run_dir, summary, "04_monitoring"), base, "monitoring"),
            _link(run_dir / "monitoring_report.md", base, "monitoring.md"),
        )
        if x
    )
    if summary.get("published"):
        outcome = "published"
    elif summary.get("quarantine_path"):
        outcome = "quarantined"
    elif summary.get("stopped_at"):
        outcome = f"stopped at {summary['stopped_at']}"
    else:
        outcome = "—"
    gate, monitoring = _read_json(run_dir / "dq_report.json"), _read_json(run_dir / "monitoring_report.json")
    return (
        f"<tr><td>{html.escape(run_dir.name)}</td>{_status_cell(gate)}{_status_cell(monitoring)}"
        f"{_incident_cell(gate, monitoring)}<td>{html.escape(outcome)}</td><td>{links}</td></tr>"
    )


def write_index(outputs_dir: Path) -> Path:
    """Write ``outputs_dir/index.html`` from what is on disk (safe to call any time)."""
    outputs_dir = Path(outputs_dir)
    runs = sorted((p for p in (outputs_dir / "runs").glob("????-??-??") if p.is_dir()), reverse=True)
    reports = sorted((p for p in (outputs_dir / "reports").glob("*") if p.is_dir()), reverse=True)
    rows = "\n".join(_run_row(r, outputs_dir) for r in runs) or '<tr><td colspan="6">No runs yet.</td></tr>'
    report_items = (
        "\n".join(
            f"<li>{html.escape(r.name.replace('_', ' → '))}: "
            + " · ".join(
                x
                for x in (
                    _link(r / "executive_summary.html", outputs_dir, "HTML"),
                    _link(r / "executive_summary.pdf", outputs_dir, "PDF"),
                )
                if x
            )
            + "</li>"
            for r in reports
        )
        or "<li>No executive summary yet (<code>puffy report</code>).</li>"
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Puffy pipeline — runs</title><style>{_STYLE}</style></head>
<body><h1>Puffy daily pipeline</h1><p class="sub">Every run date, newest first. Status: PASS, WARN, ERROR.
"New" are warnings and errors first raised that day; "ongoing" ones were open the day before too.</p>
<h2>Executive summaries</h2><ul>{report_items}</ul>
<h2>Daily runs</h2>
<table><thead><tr><th>Date</th><th>Data quality</th><th>Monitoring</th><th>Warnings and errors</th><th>Outcome</th>
<th>Reports</th></tr></thead>
<tbody>
{rows}
</tbody></table></body></html>
"""
    target = outputs_dir / "index.html"
    outputs_dir.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, target)
    return target
