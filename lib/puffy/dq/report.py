"""The gate's two reports: ``dq_report.json`` (for machines) and ``dq_report.md`` (for people).

Both are built from the findings only; the narrative is generated from the findings' dates and
messages, so it never says anything about a specific day that a finding did not establish.
Ordering is deterministic; ``generated_at`` is the only field that changes between two runs.

Neither carries personal data or live markup (``puffy.safe_output``): ``build_report`` redacts the
personal fields of ``privacy`` (params/pipeline.yaml) in every finding's sample rows, messages and
file facts, so the JSON keeps its strings whole but redacted (and written without a raw ``<``, ``>``
or ``&``); the Markdown is rendered from that redacted document, every data-derived text escaped.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from puffy.dq.checks import fmt_dates, pct
from puffy.findings import GATE_JSON, SEVERITY_RANK, Finding, finding_from_dict
from puffy.incidents import since_text
from puffy.params import PrivacyParams
from puffy.safe_output import Redactor, json_dumps_html_safe, md_cell, md_text, redactor_from

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


def redact_finding(d: dict, redactor: Redactor) -> dict:
    """A finding's JSON with its sample rows redacted by column and its texts by value."""
    return {k: ([redactor.row(r) for r in v] if k == "sample_rows" else redactor.walk(v)) for k, v in d.items()}


def build_report(
    *,
    status: str,
    generated_at: str,
    input_dir: Path,
    period: tuple[date, date],
    baseline_days: list[date],
    files: list[dict],
    findings: list[Finding],
    summary: dict,
    privacy: PrivacyParams | None = None,
) -> dict:
    """The JSON document (see ``puffy.dq.gate``); ``period`` is the requested [start, end].

    Personal values (``privacy``, default ``PrivacyParams()``) are redacted throughout.
    """
    redactor = redactor_from(privacy or PrivacyParams())
    rejects: dict[str, int] = {}
    for f in files:
        for reason, n in f["rejects_by_reason"].items():
            rejects[reason] = rejects.get(reason, 0) + n
    lines = sum(f["lines_read"] for f in files)
    events = sum(f["events"] for f in files)
    data_rejects = sum(f["rejects"] for f in files)
    return {
        "status": status,
        "message": redactor.text(status_message(status, findings)),
        "generated_at": generated_at,
        "input_dir": str(input_dir),
        "period": {"start": period[0].isoformat(), "end": period[1].isoformat()},
        "baseline": {"days": [d.isoformat() for d in baseline_days]},
        "summary": summary,
        # File facts are header names and counts, not data: only a header error quotes raw text.
        "files": [
            {**f, "header_error": redactor.text(f["header_error"]) if f.get("header_error") else f.get("header_error")}
            for f in files
        ],
        "rejects": dict(sorted(rejects.items())),
        "reconciliation": {
            "lines_read": lines,
            "events": events,
            "rejects": data_rejects,
            "ok": all(f["reconciled"] for f in files),
        },
        "findings": [redact_finding(f.to_dict(GATE_JSON), redactor) for f in findings],
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
    # the document's messages are the redacted ones; every message is data-derived text
    redacted = {d["id"]: d["message"] for d in report.get("findings", [])}

    def message(f: Finding) -> str:
        return md_text(redacted.get(f.id, f.message))

    counts = s["findings"]
    parts = [
        f"The gate read {s['files']} raw file(s) for {_period_text(period)}: {rec['lines_read']:,} data lines, "
        f"{rec['events']:,} accepted events and {rec['rejects']:,} rejected line(s). Status "
        f"**{report['status'].upper()}**: {counts.get('error', 0)} error(s), {counts.get('warn', 0)} warning(s) and "
        f"{counts.get('info', 0)} note(s); {counts.get('pass', 0)} checks found nothing.",
        "",
    ]
    base = report["baseline"]["days"]
    parts += [
        f"Baselines compare each day with up to {s['baseline_window']} trailing days"
        + (
            f", including {len(base)} earlier file(s) read for that purpose ({fmt_dates(base)})."
            if base
            else " inside the period (no earlier file was available)."
        ),
        "",
    ]
    days = s["days"]
    issues = [f for f in findings if f.severity in ("error", "warn")]
    notes = [f for f in findings if f.severity == "info"]

    def order(f: Finding):  # first appearance, then the worst first
        return (min(f.dates) if f.dates else "", -SEVERITY_RANK[f.severity], f.id)

    def tag(f: Finding) -> str:
        return f"({f.severity.upper()}, `{f.id}`)"

    if len(days) == 1 and any(f.state for f in findings):
        return "\n".join(parts + _incident_narrative(issues, notes, message, tag)).rstrip() + "\n"
    every_day = [f for f in issues if len(days) > 1 and set(days) <= set(f.dates)]
    changes = [f for f in issues if f not in every_day]
    if every_day:
        parts += ["Throughout the period:", ""] + [f"- {message(f)} {tag(f)}" for f in every_day] + [""]
    if changes:
        heading = (
            "What went wrong during the period, in order of first appearance:" if len(days) > 1 else "What went wrong:"
        )
        parts += [heading, ""]
        parts += [f"- **{_when(f.dates, period['end'])}** — {message(f)} {tag(f)}" for f in sorted(changes, key=order)]
        parts.append("")
    if not issues:
        parts += ["Nothing went wrong: no check raised a warning or an error.", ""]
    if notes:
        parts += ["Worth knowing:", ""] + [f"- {message(f)} {tag(f)}" for f in sorted(notes, key=order)] + [""]
    return "\n".join(parts).rstrip() + "\n"


def _since(f: Finding) -> str:
    return since_text(f.state, f.first_seen, f.days_open)


def _incident_narrative(issues: list[Finding], notes: list[Finding], message, tag) -> list[str]:
    """A day's account: what is new today in full, what persists in one line each, and standing
    facts (INFO findings seen before) named once, not repeated."""
    new = [f for f in issues if f.state == "new"]
    ongoing = [f for f in issues if f.state != "new"]
    parts = []
    if new:
        parts += ["New today:", ""] + [f"- {message(f)} {tag(f)}" for f in new] + [""]
    if ongoing:
        parts += ["Still open from earlier days:", ""]
        parts += [f"- `{f.id}` {f.severity.upper()}, {_since(f)}" for f in sorted(ongoing, key=lambda f: f.first_seen)]
        parts.append("")
    if not issues:
        parts += ["Nothing went wrong: no check raised a warning or an error.", ""]
    fresh = [f for f in notes if f.state == "new"]
    standing = [f for f in notes if f.state != "new"]
    if fresh:
        parts += ["Worth knowing:", ""] + [f"- {message(f)} {tag(f)}" for f in fresh] + [""]
    if standing:
        parts += [
            "Standing notes, stated in full when first seen: "
            + ", ".join(f"`{f.id}` (first seen {f.first_seen})" for f in standing)
            + ".",
            "",
        ]
    return parts


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


_cell = md_cell


def _findings_of(report: dict) -> list[Finding]:
    """The document's (redacted) findings as ``Finding`` objects, in the document's order."""
    return [finding_from_dict(d) for d in report["findings"]]


# Longest value shown in a sample cell; the JSON keeps the values whole.
SAMPLE_CELL_CHARS = 120


def _sample_sections(raised: list[Finding]) -> list[str]:
    """'## Sample rows': the rows behind each raised finding (file, line, reason, raw text…)."""
    with_rows = [f for f in raised if f.sample_rows]
    if not with_rows:
        return []
    out = [
        "",
        "## Sample rows",
        "",
        "The first rows behind each finding (all columns and whole values are in `dq_report.json`).",
    ]
    for f in with_rows:
        columns = list(dict.fromkeys(k for r in f.sample_rows for k in r))
        out += ["", f"`{f.id}`:", "", "| " + " | ".join(_cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
        for r in f.sample_rows:
            out.append("| " + " | ".join(_cell(r.get(c), SAMPLE_CELL_CHARS) for c in columns) + " |")
    return out


def render_markdown(report: dict, findings: list[Finding] | None = None) -> str:
    """``dq_report.md``: status, narrative, findings, downstream meaning, sample rows, files, rejects.

    Rendered from the document alone (its findings are the redacted ones; ``findings`` is accepted
    for compatibility and ignored), so the Markdown shows nothing the JSON does not.
    """
    findings = _findings_of(report)
    period = report["period"]
    out = [
        "# Data-quality report",
        "",
        f"**Status: {report['status'].upper()}** — {md_text(report['message'])}.",
        "",
        f"Period: {_period_text(period)} · input: {md_text(report['input_dir'])} · generated {report['generated_at']}",
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
        out += ["| Severity | Finding | Dates | Open | Value | Thresholds | Message |", "|---|---|---|---|---|---|---|"]
        out += [
            f"| {f.severity.upper()} | `{f.id}` — {_cell(f.title)} | {fmt_dates(f.dates)} | {_since(f)} | "
            f"{_fmt_value(f)} | {_cell(_fmt_thresholds(f.thresholds))} | {_cell(f.message)} |"
            for f in raised
        ]
    else:
        out.append("No findings.")
    out += ["", "## What the findings mean downstream", ""]
    out += [f"- `{f.id}`: {md_text(f.impact)}." for f in raised] or ["Nothing: every check passed."]
    out += _sample_sections(raised)
    out += [
        "",
        "## Files",
        "",
        "| File | Date | Lines | Events | Rejects | Renamed | Missing | Extra | BOM | CRLF | Reconciled |",
        "|---|---|---:|---:|---:|---|---|---|---|---|---|",
    ]
    for f in report["files"]:
        renamed = ", ".join(f"{a}→{b}" for a, b in f["renamed"].items())
        out.append(
            f"| {_cell(f['name'])} | {f['date']} | {f['lines_read']:,} | {f['events']:,} | {f['rejects']:,} | "
            f"{_cell(renamed)} | {_cell(', '.join(f['missing']))} | {_cell(', '.join(f['extra']))} | "
            f"{'yes' if f['bom'] else ''} | {'yes' if f['crlf'] else ''} | "
            f"{'yes' if f['reconciled'] else '**NO**'} |"
        )
    rec = report["reconciliation"]
    out += ["", "## Rejected lines by reason", ""]
    if report["rejects"]:
        out += ["| Reason | Lines |", "|---|---:|"] + [f"| {_cell(r)} | {n:,} |" for r, n in report["rejects"].items()]
    else:
        out.append("No line was rejected.")
    out += [
        "",
        f"Reconciliation: {rec['lines_read']:,} lines read = {rec['events']:,} events + "
        f"{rec['rejects']:,} rejects → {'OK' if rec['ok'] else 'MISMATCH'}.",
        "",
    ]
    passed = [f.id for f in findings if f.severity == "pass"]
    out += ["## Checks that passed", "", ", ".join(f"`{i}`" for i in passed) if passed else "None.", ""]
    return "\n".join(out)


def write_reports(report: dict, findings: list[Finding] | None, output_dir: Path) -> dict[str, Path]:
    """Write both reports into ``output_dir``; return {'json': path, 'md': path}.

    Both come from ``report`` (built by :func:`build_report`, so already redacted)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": output_dir / REPORT_JSON, "md": output_dir / REPORT_MD}
    paths["json"].write_text(json_dumps_html_safe(report, indent=2) + "\n", encoding="utf-8")
    paths["md"].write_text(render_markdown(report), encoding="utf-8")
    return paths
