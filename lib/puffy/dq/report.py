"""The gate's two reports: ``dq_report.json`` (for machines) and ``dq_report.md`` (for people).

Both are built from the findings only; the narrative is generated from the findings' dates and
messages, so it never says anything about a specific day that a finding did not establish.
Ordering is deterministic; ``generated_at`` is the only field that changes between two runs.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from puffy.dq.checks import SEVERITY_RANK, Finding, fmt_dates, pct

REPORT_JSON = "dq_report.json"
REPORT_MD = "dq_report.md"


def status_message(status: str, findings: list[Finding]) -> str:
    """One line for the runner: which findings set the status, and what the first one found."""
    top = [f for f in findings if f.severity == status]
    if status == "pass" or not top:
        return "no warnings or errors"
    what = top[0].message.removesuffix(f"; {top[0].impact}.")  # the finding itself, without its impact
    what = what if len(what) <= 160 else what[:159] + "…"
    return f"{len(top)} {status} finding(s): " + ", ".join(f.id for f in top) + f" — {what}"


def build_report(*, status: str, generated_at: str, input_dir: Path, period: tuple[date, date],
                 baseline_days: list[date], files: list[dict], findings: list[Finding], summary: dict) -> dict:
    """The JSON document (see ``puffy.dq.gate``); ``period`` is the requested [start, end]."""
    rejects: dict[str, int] = {}
    for f in files:
        for reason, n in f["rejects_by_reason"].items():
            rejects[reason] = rejects.get(reason, 0) + n
    lines = sum(f["lines_read"] for f in files)
    events = sum(f["events"] for f in files)
    data_rejects = sum(f["rejects"] for f in files)
    return {
        "status": status,
        "message": status_message(status, findings),
        "generated_at": generated_at,
        "input_dir": str(input_dir),
        "period": {"start": period[0].isoformat(), "end": period[1].isoformat()},
        "baseline": {"days": [d.isoformat() for d in baseline_days]},
        "summary": summary,
        "files": files,
        "rejects": dict(sorted(rejects.items())),
        "reconciliation": {"lines_read": lines, "events": events, "rejects": data_rejects,
                           "ok": all(f["reconciled"] for f in files)},
        "findings": [f.to_dict() for f in findings],
    }


def _when(dates: list[str], period_end: str) -> str:
    """'On 2025-03-08', 'From 2025-03-04' (through the end of the period), 'On 7 days, 2025-02-24 … 2025-03-06'."""
    days = sorted(dates)
    span = fmt_dates(days)
    if len(days) > 1 and "," not in span and days[-1] == period_end:
        return f"From {days[0]}"
    if span.count(",") >= 2:
        return f"On {len(days)} days, {days[0]} … {days[-1]}"
    return f"On {span}"


def _period_text(period: dict) -> str:
    return period["start"] if period["start"] == period["end"] else f"{period['start']} … {period['end']}"


def narrative(report: dict, findings: list[Finding]) -> str:
    """Plain-words account of the period, generated from the findings.

    Problems present on every day come first ("throughout"), then the ones that started or
    happened during the period in order of first appearance, then the informational notes.
    """
    s, rec, period = report["summary"], report["reconciliation"], report["period"]
    counts = s["findings"]
    parts = [
        f"The gate read {s['files']} raw file(s) for {_period_text(period)}: {rec['lines_read']:,} data lines, "
        f"{rec['events']:,} accepted events and {rec['rejects']:,} rejected line(s). Status "
        f"**{report['status'].upper()}**: {counts.get('error', 0)} error(s), {counts.get('warn', 0)} warning(s) and "
        f"{counts.get('info', 0)} note(s); {counts.get('pass', 0)} checks found nothing.",
        "",
    ]
    base = report["baseline"]["days"]
    parts += [f"Baselines compare each day with up to {s['baseline_window']} trailing days"
              + (f", including {len(base)} earlier file(s) read for that purpose ({fmt_dates(base)})." if base
                 else " inside the period (no earlier file was available)."), ""]
    days = s["days"]
    issues = [f for f in findings if f.severity in ("error", "warn")]
    notes = [f for f in findings if f.severity == "info"]

    def order(f: Finding):  # first appearance, then the worst first
        return (min(f.dates) if f.dates else "", -SEVERITY_RANK[f.severity], f.id)

    def tag(f: Finding) -> str:
        return f"({f.severity.upper()}, `{f.id}`)"

    every_day = [f for f in issues if len(days) > 1 and set(days) <= set(f.dates)]
    changes = [f for f in issues if f not in every_day]
    if every_day:
        parts += ["Throughout the period:", ""] + [f"- {f.message} {tag(f)}" for f in every_day] + [""]
    if changes:
        heading = ("What went wrong during the period, in order of first appearance:" if len(days) > 1
                   else "What went wrong:")
        parts += [heading, ""]
        parts += [f"- **{_when(f.dates, period['end'])}** — {f.message} {tag(f)}" for f in sorted(changes, key=order)]
        parts.append("")
    if not issues:
        parts += ["Nothing went wrong: no check raised a warning or an error.", ""]
    if notes:
        parts += ["Worth knowing:", ""] + [f"- {f.message} {tag(f)}" for f in sorted(notes, key=order)] + [""]
    return "\n".join(parts).rstrip() + "\n"


def _fmt_value(f: Finding) -> str:
    v = f.value
    if v is None:
        return ""
    if isinstance(v, float) and f.metric.endswith(("_rate", "_share", "_delta")):
        return pct(v)
    if isinstance(v, float):
        return f"{v:,.2f}"
    return f"{v:,}"


def _fmt_thresholds(t: dict) -> str:
    if "severity" in t:
        return f"always {t['severity']}"

    def one(level, v):
        if isinstance(v, list):
            return f"{level} outside {v[0]:g}–{v[1]:g}"
        return f"{level} > 0" if v == 0 else f"{level} ≥ {v:g}"

    return ", ".join(one(k, t[k]) for k in ("info", "warn", "error") if t.get(k) is not None) or "—"


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


# Longest value shown in a sample cell; the JSON keeps the values whole.
SAMPLE_CELL_CHARS = 120


def _sample_sections(raised: list[Finding]) -> list[str]:
    """'## Sample rows': the rows behind each raised finding (file, line, reason, raw text…)."""
    with_rows = [f for f in raised if f.sample_rows]
    if not with_rows:
        return []
    out = ["", "## Sample rows", "",
           "The first rows behind each finding (all columns and whole values are in `dq_report.json`)."]
    for f in with_rows:
        columns = list(dict.fromkeys(k for r in f.sample_rows for k in r))
        out += ["", f"`{f.id}`:", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        for r in f.sample_rows:
            cells = ["" if r.get(c) is None else _cell(r[c]) for c in columns]
            cells = [c if len(c) <= SAMPLE_CELL_CHARS else c[:SAMPLE_CELL_CHARS - 1] + "…" for c in cells]
            out.append("| " + " | ".join(cells) + " |")
    return out


def render_markdown(report: dict, findings: list[Finding]) -> str:
    """``dq_report.md``: status, narrative, findings, downstream meaning, sample rows, files, rejects."""
    period = report["period"]
    out = [
        "# Data-quality report",
        "",
        f"**Status: {report['status'].upper()}** — {report['message']}.",
        "",
        f"Period: {_period_text(period)} · input: `{report['input_dir']}` · generated {report['generated_at']}",
        "",
        "## What happened",
        "",
        narrative(report, findings),
        "",
        "## Findings",
        "",
    ]
    raised = [f for f in findings if f.severity != "pass"]
    if raised:
        out += ["| Severity | Finding | Dates | Value | Thresholds | Message |", "|---|---|---|---|---|---|"]
        out += [f"| {f.severity.upper()} | `{f.id}` — {_cell(f.title)} | {fmt_dates(f.dates)} | {_fmt_value(f)} | "
                f"{_cell(_fmt_thresholds(f.thresholds))} | {_cell(f.message)} |" for f in raised]
    else:
        out.append("No findings.")
    out += ["", "## What the findings mean downstream", ""]
    out += [f"- `{f.id}`: {f.impact}." for f in raised] or ["Nothing: every check passed."]
    out += _sample_sections(raised)
    out += ["", "## Files", "",
            "| File | Date | Lines | Events | Rejects | Renamed | Missing | Extra | BOM | CRLF | Reconciled |",
            "|---|---|---:|---:|---:|---|---|---|---|---|---|"]
    for f in report["files"]:
        renamed = ", ".join(f"{a}→{b}" for a, b in f["renamed"].items())
        out.append(f"| {f['name']} | {f['date']} | {f['lines_read']:,} | {f['events']:,} | {f['rejects']:,} | "
                   f"{renamed} | {', '.join(f['missing'])} | {', '.join(f['extra'])} | "
                   f"{'yes' if f['bom'] else ''} | {'yes' if f['crlf'] else ''} | "
                   f"{'yes' if f['reconciled'] else '**NO**'} |")
    rec = report["reconciliation"]
    out += ["", "## Rejected lines by reason", ""]
    if report["rejects"]:
        out += ["| Reason | Lines |", "|---|---:|"] + [f"| {r} | {n:,} |" for r, n in report["rejects"].items()]
    else:
        out.append("No line was rejected.")
    out += ["", f"Reconciliation: {rec['lines_read']:,} lines read = {rec['events']:,} events + "
                f"{rec['rejects']:,} rejects → {'OK' if rec['ok'] else 'MISMATCH'}.", ""]
    passed = [f.id for f in findings if f.severity == "pass"]
    out += ["## Checks that passed", "", ", ".join(f"`{i}`" for i in passed) if passed else "None.", ""]
    return "\n".join(out)


def write_reports(report: dict, findings: list[Finding], output_dir: Path) -> dict[str, Path]:
    """Write both reports into ``output_dir``; return {'json': path, 'md': path}."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": output_dir / REPORT_JSON, "md": output_dir / REPORT_MD}
    paths["json"].write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    paths["md"].write_text(render_markdown(report, findings), encoding="utf-8")
    return paths
