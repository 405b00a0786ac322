"""``daily_summary``: one row per in-range day for the gate's notebook — volumes, the rates behind
the main checks, and the day's worst severity."""

from __future__ import annotations

import pandas as pd

from puffy.dq.checks.context import CheckContext
from puffy.findings import Finding, worst_severity


def daily_summary(ctx: CheckContext, findings: list[Finding]) -> pd.DataFrame:
    """One row per in-range day: volumes, rates behind the main checks, and the day's worst severity."""
    pv = ctx.rules.contract.page_view_event
    t = pd.DataFrame(
        {
            "events": ctx.per_day("events"),
            "page_views": ctx.per_day("events", pv),
            "null_client_ids": ctx.per_day("null_client_id"),
            "page_view_null_client_ids": ctx.per_day("null_client_id", pv),
            "bot_events": ctx.per_day("bot_events"),
            "page_views_with_referrer": ctx.per_day("with_referrer", pv),
        }
    ).fillna(0)
    t = t[t.index >= ctx.first_day]
    rej = ctx.rejects[ctx.rejects.reason != "unreadable_file"].groupby("file_date")["n"].sum()
    t["rejects"] = rej.reindex(t.index).fillna(0).astype(int)
    t["client_id_null_rate"] = t.null_client_ids / t.events
    t["page_view_null_rate"] = t.page_view_null_client_ids / t.page_views.where(t.page_views > 0)
    t["bot_share"] = t.bot_events / t.events
    t["referrer_share"] = t.page_views_with_referrer / t.page_views.where(t.page_views > 0)
    worst_by_day = {}
    for f in findings:
        for r in f.daily:
            worst_by_day[r["date"]] = worst_severity([worst_by_day.get(r["date"], "pass"), r["severity"]])
    t["status"] = [worst_by_day.get(d.isoformat(), "pass") for d in t.index]
    t.index.name = "date"
    int_cols = [
        "events",
        "page_views",
        "null_client_ids",
        "page_view_null_client_ids",
        "bot_events",
        "page_views_with_referrer",
    ]
    return t.astype({c: int for c in int_cols}).reset_index()
