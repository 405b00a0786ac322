"""``ingest.*``: every line of every file is an event or a reject; malformed CSV lines; days
without a raw file or without data. Also ``file_facts``, the per-file facts of the report."""

from __future__ import annotations

from puffy.dq.checks.context import ROW_REJECTS, CheckContext, sql_str
from puffy.dq.checks.grading import counted, fixed, fmt_dates
from puffy.findings import Finding


def file_facts(ctx: CheckContext) -> list[dict]:
    """Per in-range file: header facts, lines read, events, rejects by reason, reconciliation."""
    events = ctx.per_day("events")
    out = []
    for f in ctx.range_files:
        rej = ctx.rejects[ctx.rejects.source_file == f.name]
        by_reason = {r: int(n) for r, n in zip(rej.reason, rej.n)}
        data_rejects = sum(n for r, n in by_reason.items() if r != "unreadable_file")
        lines = int(ctx.lines_read.get(f.name, 0))
        n_events = int(events.get(f.file_date, 0))
        out.append(
            {
                "name": f.name,
                "date": f.file_date.isoformat(),
                "lines_read": lines,
                "events": n_events,
                "rejects": data_rejects,
                "rejects_by_reason": dict(sorted(by_reason.items())),
                "reconciled": lines == n_events + data_rejects,
                "header": list(f.header),
                "renamed": {a: b for a, b in f.renamed},
                "missing": list(f.missing),
                "extra": list(f.extra),
                "bom": f.has_bom,
                "crlf": f.crlf,
                "compressed": f.compressed,
                "header_error": f.header_error,
            }
        )
    return out


def check_ingest(ctx: CheckContext) -> list[Finding]:
    rules = ctx.rules.ingest
    facts = file_facts(ctx)
    gaps = [x for x in facts if not x["reconciled"] and not x["header_error"]]
    recon = fixed(
        ctx,
        "ingest.reconciliation",
        "Lines read ≠ events + rejects",
        "unaccounted_lines",
        rules.reconciliation,
        [x["date"] for x in gaps],
        sum(abs(x["lines_read"] - x["events"] - x["rejects"]) for x in gaps),
        "In "
        + ", ".join(
            f"{x['name']} {x['lines_read']:,} lines ≠ {x['events']:,} events + {x['rejects']:,} rejects" for x in gaps
        ),
        "Every data line of every file is either an event or a reject.",
    )
    malformed_reasons = set(ctx.rejects.reason) - set(ROW_REJECTS)
    malformed = counted(
        ctx,
        "ingest.malformed_lines",
        "Malformed CSV lines",
        "malformed_line_rate",
        rules.malformed_line_rate,
        ctx.rejects_per_day(malformed_reasons).to_dict(),
        ctx.lines_per_day().to_dict(),
        lambda n, span, ds: f"{n:,} line(s) ({span} of a file's lines) could not be parsed as CSV ({fmt_dates(ds)})",
        "Every line parsed as CSV.",
        lambda ds: ctx.samples(
            f"reason NOT IN ({', '.join(sql_str(r) for r in ROW_REJECTS)})",
            "source_file, line, reason, detail, left(raw, 200) AS raw",
            ds,
            "stg_rejects",
            "file_date, line",
        ),
    )
    have = set(ctx.days)
    absent = [d.isoformat() for d in ctx.expected_days if d not in have]
    # A file with a header and no data line is an empty day as surely as no file at all.
    empty = [x["date"] for x in facts if not x["lines_read"] and not x["header_error"]]
    detail = "; ".join(
        part
        for part in (
            f"No raw file for {fmt_dates(absent)}" if absent else "",
            f"no data line in the file of {fmt_dates(empty)}" if empty else "",
        )
        if part
    )
    missing_file = fixed(
        ctx,
        "ingest.missing_file",
        "Day without a raw file or without data",
        "missing_files",
        rules.missing_file,
        sorted(absent + empty),
        len(absent) + len(empty),
        detail[:1].upper() + detail[1:],
        "Every day in range has a raw file with data.",
    )
    return [recon, malformed, missing_file]
