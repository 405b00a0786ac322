"""Materiality: how wrong a day's published numbers would be, in orders, revenue and sessions.

The other checks grade rates of rows ("19.6% of a day's payloads are invalid JSON"). A rate says
nothing about money: ten broken purchase payloads are a small share of a day's order and email
events but $6k of revenue that would silently go missing. These checks weigh what the day would
lose if it were published as it is, and make it an ERROR (the day stops) from a configurable
share on:

``materiality.orders_lost``
    purchase events that cannot become orders because of a data fault: rejected rows (timestamp,
    event name), malformed CSV lines that carry the purchase event, and accepted purchases whose
    payload is invalid JSON or lacks a transaction id or a usable (numeric, non-negative) revenue.
    Replays and zero-revenue placeholders are the transform's documented policy, not losses.
``materiality.revenue_lost``
    the revenue of those purchases: read from the payload text where it survives (a truncated
    JSON usually keeps its early ``"revenue": …``), otherwise estimated at the day's (else the
    baseline's) average order value, and said so.
``materiality.sessions_at_risk``
    client ids with a rejected row (a session of theirs is missing an event, is split or is lost)
    plus one per malformed line, as a share of the day's client ids. Exact duplicates are not
    losses (the copy is dropped on purpose) and missing client ids are graded by ``client_id.*``.
``materiality.no_purchases``
    a day without a single purchase where the trailing baseline has them: a broken purchase tag,
    not a quiet day.
"""

from __future__ import annotations

from datetime import date

import pandas as pd

from puffy.dq.checks.context import ROW_REJECTS, CheckContext, sql_str
from puffy.dq.checks.grading import counted, fixed, fmt_dates
from puffy.findings import Finding

# Reject reasons that are the gate's deliberate choice, not a loss of data.
_NOT_LOST = ("exact_duplicate", "unreadable_file")  # an unreadable file is its own ERROR (schema.unreadable_file)
# SQL lists: parsed rows rejected as a loss, and every row-level reason (the rest are malformed lines).
_LOST_ROW_REASONS = ", ".join(sql_str(r) for r in ROW_REJECTS if r not in _NOT_LOST)
_ROW_REASONS = ", ".join(sql_str(r) for r in (*ROW_REJECTS, *_NOT_LOST))
# The revenue as it appears in a purchase payload's text, when the JSON around it is broken.
_REVENUE_IN_TEXT = r'"revenue"\s*:\s*"?(-?[0-9]+(?:\.[0-9]+)?)'


def _day_frame(ctx: CheckContext, sql: str) -> pd.DataFrame:
    frame = ctx.df(sql)
    if frame.empty:
        return frame
    frame["file_date"] = pd.to_datetime(frame["file_date"]).dt.date
    return frame.set_index("file_date")


def lost_purchases(ctx: CheckContext) -> pd.DataFrame:
    """Per day (baseline days included, to price a day's unreadable purchases at their average order
    value): purchase events kept as orders and lost ones, with the revenue known or estimated.

    Columns: kept, kept_revenue, lost, lost_known_revenue, lost_unknown (lost purchases whose revenue
    could not be read).
    """
    purchase = sql_str(ctx.rules.contract.purchase_event)
    # The transform's rule (transform/orders.py): no order without a valid payload, a transaction id
    # and a revenue that reads as a non-negative number ("1449" as a string reads as 1449).
    fault = "payload_error IS NOT NULL OR transaction_id IS NULL OR revenue IS NULL OR revenue < 0"
    text_revenue = f"TRY_CAST(regexp_extract(event_data, '{_REVENUE_IN_TEXT}', 1) AS DOUBLE)"
    return _day_frame(
        ctx,
        f"""
        WITH accepted AS (
            SELECT file_date, ({fault}) AS lost,
                   CASE WHEN ({fault}) THEN abs(coalesce(revenue, {text_revenue})) ELSE revenue END AS amount
            FROM stg_events WHERE event_name = {purchase}
        ), rejected AS (
            -- rows parsed but rejected (their event_data is intact) ...
            SELECT r.file_date, abs({text_revenue.replace("event_data", "a.event_data")}) AS amount
            FROM stg_rejects r JOIN stg_events_all a
              ON a.source_file = r.source_file AND a.row_number = r.row_number
            WHERE r.reason IN ({_LOST_ROW_REASONS}) AND a.event_name = {purchase}
            UNION ALL
            -- ... and malformed CSV lines that carry the purchase event
            SELECT file_date, abs(TRY_CAST(regexp_extract(replace(raw, '""', '"'), '{_REVENUE_IN_TEXT}', 1)
                                           AS DOUBLE))
            FROM stg_rejects
            WHERE reason NOT IN ({_ROW_REASONS}) AND contains(raw, {purchase})
        ), lost AS (
            SELECT file_date, amount FROM accepted WHERE lost UNION ALL SELECT file_date, amount FROM rejected
        )
        SELECT file_date,
               sum(kept) AS kept, sum(kept_revenue) AS kept_revenue, sum(lost) AS lost,
               sum(lost_known_revenue) AS lost_known_revenue, sum(lost_unknown) AS lost_unknown
        FROM (
            SELECT file_date, 1 AS kept, coalesce(amount, 0) AS kept_revenue, 0 AS lost,
                   0 AS lost_known_revenue, 0 AS lost_unknown FROM accepted WHERE NOT lost
            UNION ALL
            SELECT file_date, 0, 0, 1, coalesce(amount, 0), CASE WHEN amount IS NULL THEN 1 ELSE 0 END FROM lost
        ) GROUP BY 1 ORDER BY 1
    """,
    )


def _aov(ctx: CheckContext, purchases: pd.DataFrame, day: date) -> float | None:
    """The day's average order value, else the trailing baseline's (to price unreadable purchases)."""
    kept = purchases["kept"] if "kept" in purchases else pd.Series(dtype=float)
    revenue = purchases["kept_revenue"] if "kept_revenue" in purchases else pd.Series(dtype=float)
    if kept.get(day, 0) > 0:
        return float(revenue[day]) / float(kept[day])
    aov = (revenue / kept.where(kept > 0)).dropna()
    return ctx.baseline(aov, day)


def check_materiality(ctx: CheckContext) -> list[Finding]:
    purchases = lost_purchases(ctx)
    return [*_orders_and_revenue_lost(ctx, purchases), _sessions_at_risk(ctx), _no_purchases(ctx)]


def _lost_revenue(ctx: CheckContext, purchases: pd.DataFrame) -> tuple[dict, dict, dict]:
    """Per in-range day: the revenue lost (read, else priced at the average order value), the day's
    total purchase revenue, and (lost purchases without a readable revenue, the order value used)."""
    revenue_lost, revenue_total, estimated = {}, {}, {}
    for day in ctx.days:
        row = purchases.loc[day] if day in purchases.index else None
        if row is None:
            continue
        aov = _aov(ctx, purchases, day)
        guessed = float(row.lost_unknown) * (aov or 0.0)
        revenue_lost[day] = float(row.lost_known_revenue) + guessed
        revenue_total[day] = float(row.kept_revenue) + revenue_lost[day]
        estimated[day] = (int(row.lost_unknown), aov)
    return revenue_lost, revenue_total, estimated


def _orders_and_revenue_lost(ctx: CheckContext, purchases: pd.DataFrame) -> list[Finding]:
    rules = ctx.rules.materiality
    name = ctx.rules.contract.purchase_event
    kept = purchases["kept"].astype(float) if not purchases.empty else pd.Series(dtype=float)
    lost = purchases["lost"].astype(float) if not purchases.empty else pd.Series(dtype=float)
    revenue_lost, revenue_total, estimated = _lost_revenue(ctx, purchases)

    def revenue_what(n, span, dates):
        amount = sum(revenue_lost[date.fromisoformat(d)] for d in dates)
        guesses = [(estimated[date.fromisoformat(d)]) for d in dates if estimated[date.fromisoformat(d)][0]]
        note = ""
        if guesses:
            k = sum(g[0] for g in guesses)
            note = (
                f", {k:,} of them priced at the average order value because their revenue is unreadable"
                if all(g[1] is not None for g in guesses)
                else f", {k:,} of them unpriced (no order value to estimate from): the loss is larger"
            )
        return (
            f"${amount:,.2f} of purchase revenue ({span} of the day's) would be missing from the "
            f"published orders ({fmt_dates(dates)}){note}"
        )

    totals_orders = {d: kept.get(d, 0.0) + lost.get(d, 0.0) for d in ctx.days}
    orders_f = counted(
        ctx,
        "materiality.orders_lost",
        "Purchases that would be lost",
        "orders_lost_rate",
        rules.orders_lost_rate,
        lost.to_dict(),
        totals_orders,
        lambda n, span, ds: (
            f"{n:,} {name} event(s) ({span} of the day's purchases) cannot become orders: "
            f"rejected rows, malformed lines, or payloads without a readable transaction id or "
            f"revenue ({fmt_dates(ds)})"
        ),
        "Every purchase event can become an order.",
    )
    # The revenue share is graded on amounts: ``counted`` takes the lost amount over the day's total.
    revenue_f = counted(
        ctx,
        "materiality.revenue_lost",
        "Revenue that would be lost",
        "revenue_lost_rate",
        rules.revenue_lost_rate,
        revenue_lost,
        revenue_total,
        revenue_what,
        "No purchase revenue is lost to data faults.",
    )
    return [orders_f, revenue_f]


def _sessions_at_risk(ctx: CheckContext) -> Finding:
    """Client ids with a rejected row, plus one per malformed line, as a share of the day's client ids."""
    rules = ctx.rules.materiality
    clients = _day_frame(
        ctx,
        f"""
        WITH lost_rows AS (
            SELECT r.file_date, a.client_id FROM stg_rejects r JOIN stg_events_all a
              ON a.source_file = r.source_file AND a.row_number = r.row_number
            WHERE r.reason IN ({_LOST_ROW_REASONS}) AND {ctx.in_range("r.file_date")}
        )
        SELECT d.file_date, d.clients, coalesce(l.at_risk, 0) + coalesce(m.malformed, 0) AS at_risk
        FROM (SELECT file_date, count(DISTINCT client_id) AS clients FROM stg_events
              WHERE {ctx.in_range()} GROUP BY 1) d
        LEFT JOIN (SELECT file_date, count(DISTINCT coalesce(client_id, '')) AS at_risk FROM lost_rows GROUP BY 1) l
          USING (file_date)
        LEFT JOIN (SELECT file_date, count(*) AS malformed FROM stg_rejects
                   WHERE reason NOT IN ({_ROW_REASONS}) AND {ctx.in_range()} GROUP BY 1) m USING (file_date)
    """,
    )
    return counted(
        ctx,
        "materiality.sessions_at_risk",
        "Sessions that would be wrong",
        "sessions_at_risk_rate",
        rules.sessions_at_risk_rate,
        clients["at_risk"].to_dict() if not clients.empty else {},
        clients["clients"].to_dict() if not clients.empty else {},
        lambda n, span, ds: (
            f"{n:,} client(s) ({span} of the day's) lose a rejected or malformed row, so their "
            f"sessions are missing, split or cut short ({fmt_dates(ds)})"
        ),
        "No client loses an event to a rejected row.",
    )


def _no_purchases(ctx: CheckContext) -> Finding:
    """A day without a single purchase where the trailing baseline has them."""
    rules = ctx.rules.materiality
    name = ctx.rules.contract.purchase_event
    all_purchases = ctx.per_day("events", name)
    no_purchase_days, baselines = [], {}
    for day in ctx.days:
        base = ctx.baseline(all_purchases, day)
        if all_purchases.get(day, 0) == 0 and base is not None and base >= rules.no_purchases_min_baseline:
            no_purchase_days.append(day.isoformat())
            baselines[day.isoformat()] = base
    return fixed(
        ctx,
        "materiality.no_purchases",
        "A day without purchases",
        "days_without_purchases",
        rules.no_purchases,
        no_purchase_days,
        len(no_purchase_days),
        "No "
        + name
        + " event on "
        + ", ".join(f"{d} (trailing median {baselines[d]:,.0f} a day)" for d in no_purchase_days),
        "Every day with a purchase baseline has purchases.",
    )
