"""``referrer.*``: the shares of page views with a referrer, of anonymised referrers and of
UTM-tagged landings, against the trailing baseline."""

from __future__ import annotations

import pandas as pd

from puffy.dq.checks.context import CheckContext
from puffy.dq.checks.grading import day_notes, fmt_dates, graded, pct
from puffy.findings import Finding


def check_referrer(ctx: CheckContext) -> list[Finding]:
    rules = ctx.rules.referrer
    pv = ctx.rules.contract.page_view_event
    views = ctx.per_day("events", pv)
    views = views[views >= rules.min_page_views]
    without_column = {f.file_date for f in ctx.files if "referrer" in f.missing}
    with_column = views[[d not in without_column for d in views.index]]
    coverage = ctx.per_day("with_referrer", pv).reindex(with_column.index).fillna(0) / with_column
    anonymised = (
        ctx.per_day("anonymised_referrer", pv).reindex(with_column.index).fillna(0)
        / ctx.per_day("with_referrer", pv).reindex(with_column.index)
    ).replace([float("inf")], float("nan"))
    utm = ctx.per_day("with_utm", pv).reindex(views.index).fillna(0) / views
    gone = sorted(d.isoformat() for d in without_column if d in set(ctx.days))
    note = f" (no referrer column on {fmt_dates(gone)}, see schema.column_missing)" if gone else ""
    out = []
    for fid, title, series, phrase in (
        ("referrer.coverage", "Share of page views with a referrer", coverage, "page views with a referrer"),
        (
            "referrer.anonymised_share",
            "Share of referrers that are anonymised",
            anonymised,
            "referrers that are anonymised source-*.com hosts",
        ),
        ("referrer.utm_coverage", "Share of page views with UTM parameters", utm, "page views with utm_ parameters"),
    ):
        deltas, notes = {}, {}
        for d in ctx.days:
            base = ctx.baseline(series, d)
            if base is None or d not in series.index or pd.isna(series[d]):
                continue
            deltas[d] = abs(series[d] - base)
            notes[d] = f"{pct(series[d])} on {d.isoformat()} (baseline {pct(base)})"
        suffix = note if fid != "referrer.utm_coverage" else ""  # UTM parameters live in page_url
        out.append(
            graded(
                ctx,
                fid,
                title,
                f"{fid.split('.')[1]}_delta",
                rules.share_delta,
                deltas,
                lambda fl, notes=notes, phrase=phrase, suffix=suffix: (
                    f"The share of {phrase} moved away from the trailing baseline: {day_notes(fl, notes)}{suffix}"
                ),
                f"The share of {phrase} is in line with the trailing baseline{suffix}.",
            )
        )
    return out
