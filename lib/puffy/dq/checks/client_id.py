"""``client_id.*``: missing client ids (per day and against the trailing baseline) and ids that
do not match the contract's pattern."""

from __future__ import annotations

from datetime import date

import pandas as pd

from puffy.dq.checks.context import CheckContext, sql_str
from puffy.dq.checks.grading import (
    counted,
    day_notes,
    fmt_dates,
    graded,
    on_days,
    pct,
    ratio_by_day,
    span_text,
)
from puffy.findings import Finding

MAX_RATIO = 1000.0  # a jump from a zero baseline is reported as this ratio


def check_client_ids(ctx: CheckContext) -> list[Finding]:
    rules = ctx.rules.client_ids
    t = ctx.day_event
    t = t[t.events >= rules.null_rate_min_events].assign(rate=lambda x: x.null_client_id / x.events)
    # Per day, the worst event name (page views carry the volume; a small event type is too noisy).
    top = t.sort_values(["file_date", "rate", "event_name"], ascending=[True, False, True]).drop_duplicates("file_date")
    worst_event = dict(zip(top.file_date, top.event_name))

    def null_what(fl):
        names = sorted({worst_event[date.fromisoformat(r["date"])] for r in fl})
        return f"Client ids are missing on {span_text(fl)} of {'/'.join(names)} events a day {on_days(fl)}"

    null_rate = graded(
        ctx,
        "client_id.null_rate",
        "Missing client ids",
        "null_rate",
        rules.null_rate,
        dict(zip(top.file_date, top.rate)),
        null_what,
        "Client ids are present on (nearly) every event.",
        lambda ds: ctx.samples("client_id IS NULL", "event_id, file_date, event_name, page_url", ds),
    )
    overall = ratio_by_day(ctx.per_day("null_client_id"), ctx.per_day("events"))
    series = pd.Series(overall, dtype=float)
    ratios, notes = {}, {}
    for d in ctx.days:
        base = ctx.baseline(series, d)
        rate = overall.get(d)
        if base is None or rate is None or rate - base < rules.null_rate_ratio_min_delta:
            continue
        ratios[d] = min(rate / base, MAX_RATIO) if base > 0 else MAX_RATIO
        notes[d] = f"{pct(rate)} on {d.isoformat()} (baseline {pct(base)})"
    jump = graded(
        ctx,
        "client_id.null_rate_vs_baseline",
        "Missing client ids jump vs baseline",
        "null_rate_ratio",
        rules.null_rate_ratio,
        ratios,
        lambda fl: (
            "The share of events without a client id jumped against the trailing baseline: " + day_notes(fl, notes)
        ),
        "The missing-id share is in line with the trailing baseline.",
    )
    bad = counted(
        ctx,
        "client_id.bad_format",
        "Malformed client ids",
        "bad_format_rate",
        rules.bad_format_rate,
        ctx.per_day("bad_client_id").to_dict(),
        (ctx.per_day("events") - ctx.per_day("null_client_id")).to_dict(),
        lambda n, span, ds: (
            f"{n:,} client id(s) ({span} of a day's) do not match the contract's pattern ({fmt_dates(ds)})"
        ),
        "Every client id matches the contract's pattern (cookie id or UUID).",
        lambda ds: ctx.samples(
            f"NOT regexp_full_match(client_id, {sql_str(ctx.rules.contract.client_id_pattern)})",
            "event_id, file_date, client_id",
            ds,
        ),
    )
    return [null_rate, jump, bad]
