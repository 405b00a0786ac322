"""``taxonomy.*``: event names outside the contract, contract events absent on a day, and where
the vendor's data dictionary disagrees with the data (purchase event name, daily volume)."""

from __future__ import annotations

import pandas as pd

from puffy.dq.checks.context import CheckContext, sql_str
from puffy.dq.checks.grading import counted, fixed, fmt_dates, range_text
from puffy.findings import Finding


def check_taxonomy(ctx: CheckContext) -> list[Finding]:
    rules, contract = ctx.rules.taxonomy, ctx.rules.contract
    unknown = counted(
        ctx,
        "taxonomy.unknown_event",
        "Unknown or empty event names",
        "unknown_event_rate",
        rules.unknown_event_rate,
        ctx.rejects_per_day(["unknown_event_name", "missing_event_name"]).to_dict(),
        ctx.lines_per_day().to_dict(),
        lambda n, span, ds: (
            f"{n:,} row(s) ({span} of a day's rows) have an empty event name or one outside the "
            f"contract ({fmt_dates(ds)})"
        ),
        "Every event name is in the contract.",
        lambda ds: ctx.samples(
            "reason IN ('unknown_event_name', 'missing_event_name')",
            "source_file, row_number, reason, detail",
            ds,
            "stg_rejects",
            "file_date, row_number",
        ),
    )
    totals = ctx.per_day("events")
    by_name = ctx.day_event.pivot_table(index="file_date", columns="event_name", values="events", aggfunc="sum")
    absent = []
    for d in ctx.days:
        if totals.get(d, 0) < rules.event_absent_min_day_events:
            continue
        for name in contract.events:
            if name not in by_name.columns or pd.isna(by_name.at[d, name]) or by_name.at[d, name] == 0:
                absent.append((d.isoformat(), name))
    absent_f = fixed(
        ctx,
        "taxonomy.event_absent",
        "Contract event absent on a day",
        "absent_event_days",
        rules.event_absent,
        [d for d, _ in absent],
        len(absent),
        "No " + "; no ".join(f"{n} event on {d}" for d, n in absent),
        "Every contract event occurs on every day.",
    )
    return [unknown, absent_f, *_dictionary(ctx)]


def _dictionary(ctx: CheckContext) -> list[Finding]:
    """Where the vendor's data dictionary disagrees with the data (purchase name, daily volume)."""
    rules, contract = ctx.rules, ctx.rules.contract
    severity = rules.taxonomy.dictionary_mismatch
    dict_name, purchase = contract.dictionary_purchase_event, contract.purchase_event
    # stg_events_all holds every parsed row, so a dictionary name the contract does not know is counted too.
    counts = dict(
        ctx.con.execute(f"""
        SELECT event_name, count(*) FROM stg_events_all
        WHERE event_name IN ({sql_str(dict_name)}, {sql_str(purchase)}) AND {ctx.in_range()} GROUP BY 1
    """).fetchall()
    )
    n_purchase = ctx.per_day("events", purchase)
    mismatch_days = (
        [d.isoformat() for d in ctx.days if n_purchase.get(d, 0) > 0]
        if dict_name != purchase and not counts.get(dict_name)
        else []
    )
    name_f = fixed(
        ctx,
        "taxonomy.dictionary_purchase_name",
        "Purchase event name differs from the data dictionary",
        "purchase_events",
        severity,
        mismatch_days,
        counts.get(purchase, 0),
        f"The data dictionary calls the purchase event '{dict_name}' but the data has none; its "
        f"{counts.get(purchase, 0):,} orders are '{purchase}' events ({fmt_dates(mismatch_days)})",
        "The purchase event name matches the data dictionary.",
    )
    low, high = rules.dictionary_daily_events
    totals = ctx.per_day("events")
    outside = {d: totals.get(d, 0) for d in ctx.days if not low <= totals.get(d, 0) <= high}
    lo_v, hi_v = (min(outside.values()), max(outside.values())) if outside else (0, 0)
    volume_f = fixed(
        ctx,
        "taxonomy.dictionary_daily_volume",
        "Daily volume outside the data dictionary's range",
        "events_per_day",
        severity,
        [d.isoformat() for d in outside],
        int(hi_v),
        f"{len(outside)} day(s) have {range_text(lo_v, hi_v)} events, outside the data dictionary's "
        f"{low:,}–{high:,} a day ({fmt_dates(d.isoformat() for d in outside)})",
        f"Daily volumes are within the data dictionary's {low:,}–{high:,} events.",
    )
    return [name_f, volume_f]
