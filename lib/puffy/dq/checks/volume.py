"""``volume.*``: daily event volume and each event's volume against the trailing baseline, and
days with too little history for a baseline."""

from __future__ import annotations

import math

from puffy.dq.checks.context import CheckContext
from puffy.dq.checks.grading import day_notes, fixed, fmt_dates, graded
from puffy.findings import Finding


def check_volume(ctx: CheckContext) -> list[Finding]:
    rules = ctx.rules.volume
    totals = ctx.per_day("events")
    ratios, short, notes = {}, [], {}
    for d in ctx.days:
        base = ctx.baseline(totals, d)
        if base is None:
            short.append(d)
            continue
        ratios[d] = totals.get(d, 0) / base
        notes[d] = f"{int(totals.get(d, 0)):,} on {d.isoformat()} (×{ratios[d]:.2f} of {base:,.0f})"

    def far(r):  # distance from 1 on a log scale, so halving and doubling rank alike
        return abs(math.log(r)) if r and r > 0 else float("inf")

    daily = graded(
        ctx,
        "volume.daily_events",
        "Daily event volume vs baseline",
        "events_ratio",
        rules.daily_events_ratio,
        ratios,
        lambda fl: "Daily events broke the trailing baseline: " + day_notes(fl, notes),
        "Daily event volumes are in line with the trailing baseline.",
        key=far,
    )
    # Per day, the event whose volume is furthest from its own baseline is the one graded.
    per_event, event_notes = {}, {}
    for name in ctx.rules.contract.events:
        series = ctx.per_day("events", name).reindex(totals.index).fillna(0)
        for d in ctx.days:
            base = ctx.baseline(series, d)
            if base is None or base < rules.event_name_min_baseline:
                continue
            ratio = series.get(d, 0) / base
            if d not in per_event or far(ratio) > far(per_event[d]):
                per_event[d] = ratio
                event_notes[d] = f"{name} {int(series.get(d, 0)):,} on {d.isoformat()} (×{ratio:.2f} of {base:,.0f})"
    event_name = graded(
        ctx,
        "volume.event_name",
        "Event-name volume vs baseline",
        "event_ratio",
        rules.event_name_ratio,
        per_event,
        lambda fl: "Event volumes broke their trailing baseline: " + day_notes(fl, event_notes),
        "Every event's daily volume is in line with its trailing baseline.",
        key=far,
    )
    short_dates = [d.isoformat() for d in short]
    insufficient = fixed(
        ctx,
        "volume.insufficient_history",
        "Too little history for baselines",
        "days_without_baseline",
        rules.insufficient_history,
        short_dates,
        len(short),
        f"{len(short)} day(s) have fewer than {ctx.rules.min_baseline_days} earlier days of data within "
        f"{ctx.rules.baseline_days} days ({fmt_dates(short_dates)})",
        "Every day has a trailing baseline.",
    )
    return [daily, event_name, insufficient]
