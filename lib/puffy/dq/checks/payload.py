"""``payload.*``: the JSON payloads of orders and email sign-ups — invalid JSON, revenue missing,
not a number, negative, zero or not a whole number, revenue ≠ the sum of item prices, items or item
fields missing.

Four queries (orders, items, revenue vs items, zero-revenue orders with one all-null item) feed
three groups of findings: per-order rates, per-item rates, and the non-integer revenues.
"""

from __future__ import annotations

import pandas as pd

from puffy.dq.checks.context import CheckContext, sql_str
from puffy.dq.checks.grading import counted, fixed, fmt_dates
from puffy.findings import Finding

NUMERIC_JSON_TYPES = ("BIGINT", "UBIGINT", "DOUBLE", "HUGEINT")  # revenue_json_type values that are numbers
# An item line whose every field is null (a placeholder, not an item).
ALL_NULL_ITEM = (
    "(item_id IS NULL AND item_name IS NULL AND item_variant IS NULL AND quantity IS NULL AND item_price IS NULL)"
)
ORDER_COLUMNS = "event_id, transaction_id, revenue, revenue_json_type, item_count"
ITEM_COLUMNS = "event_id, transaction_id, line_number, item_id, item_name, quantity, item_price"


def check_payload(ctx: CheckContext) -> list[Finding]:
    orders = _order_counts(ctx)
    items = _item_counts(ctx)
    return [
        *_order_findings(ctx, orders, _zero_revenue_placeholders(ctx)),
        *_item_findings(ctx, items, _revenue_vs_items(ctx, ctx.rules.payload.revenue_tolerance)),
        _non_integer_revenue(ctx, orders),
    ]


def _by_day(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.set_index("file_date")
    frame.index = pd.to_datetime(frame.index).date
    return frame


def _sql_names(ctx: CheckContext) -> tuple[str, str, str]:
    """The purchase and email event names and the numeric JSON types, as SQL literals."""
    contract = ctx.rules.contract
    return (
        sql_str(contract.purchase_event),
        sql_str(contract.email_event),
        ", ".join(sql_str(t) for t in NUMERIC_JSON_TYPES),
    )


def _order_counts(ctx: CheckContext) -> pd.DataFrame:
    """Per day: order and email events, and the orders with each payload fault."""
    purchase, email, numeric = _sql_names(ctx)
    return _by_day(
        ctx.df(f"""
        SELECT file_date,
               count(*) FILTER (WHERE event_name IN ({purchase}, {email})) AS payload_events,
               count(*) FILTER (WHERE event_name = {purchase}) AS orders,
               count(*) FILTER (WHERE payload_error IS NOT NULL) AS invalid_json,
               count(*) FILTER (WHERE event_name = {purchase} AND revenue_json_type IN ('MISSING', 'NULL'))
                   AS revenue_missing,
               count(*) FILTER (WHERE event_name = {purchase}
                                AND revenue_json_type NOT IN ('MISSING', 'NULL', {numeric})) AS revenue_non_numeric,
               count(*) FILTER (WHERE revenue < 0) AS revenue_negative,
               count(*) FILTER (WHERE revenue = 0) AS revenue_zero,
               count(*) FILTER (WHERE revenue <> floor(revenue)) AS revenue_non_integer,
               count(*) FILTER (WHERE event_name = {purchase} AND payload_error IS NULL AND coalesce(item_count, 0) = 0)
                   AS items_missing
        FROM stg_events WHERE event_name IN ({purchase}, {email}) AND {ctx.in_range()}
        GROUP BY 1 ORDER BY 1
    """)
    )


def _item_counts(ctx: CheckContext) -> pd.DataFrame:
    """Per day: order items (all-null placeholders aside), those without a price, those without fields."""
    return _by_day(
        ctx.df(f"""
        SELECT file_date, count(*) FILTER (WHERE NOT {ALL_NULL_ITEM}) AS items,
               count(*) FILTER (WHERE NOT {ALL_NULL_ITEM} AND item_price IS NULL) AS price_missing,
               count(*) FILTER (WHERE NOT {ALL_NULL_ITEM}
                                AND (item_id IS NULL OR item_name IS NULL OR quantity IS NULL)) AS fields_missing
        FROM stg_purchase_items WHERE {ctx.in_range()} GROUP BY 1 ORDER BY 1
    """)
    )


def _revenue_vs_items(ctx: CheckContext, tolerance: float) -> pd.DataFrame:
    """Per day: orders with every item priced (comparable), and those whose revenue differs from the
    sum of item prices by more than ``tolerance`` (mismatched)."""
    return _by_day(
        ctx.df(f"""
        WITH per_order AS (
            SELECT event_id, sum(item_price) AS item_total, count(*) AS n, count(item_price) AS priced
            FROM stg_purchase_items WHERE {ctx.in_range()} GROUP BY 1)
        SELECT e.file_date, count(*) AS comparable,
               count(*) FILTER (WHERE abs(e.revenue - p.item_total) > {tolerance}) AS mismatched
        FROM stg_events e JOIN per_order p USING (event_id)
        WHERE p.n = p.priced AND e.revenue IS NOT NULL GROUP BY 1 ORDER BY 1
    """)
    )


def _zero_revenue_placeholders(ctx: CheckContext) -> int:
    """Zero-revenue orders whose single item is all null (a placeholder order, said in the message)."""
    return ctx.con.execute(f"""
        SELECT count(*) FROM stg_events e
        WHERE e.revenue = 0 AND e.item_count = 1 AND {ctx.in_range("e.file_date")}
          AND EXISTS (SELECT 1 FROM stg_purchase_items i WHERE i.event_id = e.event_id AND {ALL_NULL_ITEM})
    """).fetchone()[0]


def _order_findings(ctx: CheckContext, orders: pd.DataFrame, zero_all_null: int) -> list[Finding]:
    """Invalid JSON (of order and email events) and the per-order revenue and item faults."""
    rules, event = ctx.rules.payload, ctx.rules.contract.purchase_event
    purchase, _, numeric = _sql_names(ctx)

    def order_finding(fid, title, column, rule, phrase, quiet, where):
        return counted(
            ctx,
            fid,
            title,
            f"{column}_rate",
            rule,
            orders[column].to_dict(),
            orders["orders"].to_dict(),
            lambda n, span, ds: f"{n:,} {event} event(s) ({span} of a day's orders) {phrase} ({fmt_dates(ds)})",
            quiet,
            lambda ds: ctx.samples(f"event_name = {purchase} AND ({where})", ORDER_COLUMNS, ds),
        )

    return [
        counted(
            ctx,
            "payload.invalid_json",
            "Invalid or missing JSON payload",
            "invalid_json_rate",
            rules.invalid_json_rate,
            orders["invalid_json"].to_dict(),
            orders["payload_events"].to_dict(),
            lambda n, span, ds: (
                f"{n:,} order/email event(s) ({span} of a day's) have a missing or invalid "
                f"JSON payload ({fmt_dates(ds)})"
            ),
            "Every order and email payload is valid JSON.",
            lambda ds: ctx.samples(
                "payload_error IS NOT NULL",
                "event_id, event_name, payload_error, left(event_data, 200) AS event_data",
                ds,
            ),
        ),
        order_finding(
            "payload.revenue_missing",
            "Order without revenue",
            "revenue_missing",
            rules.revenue_missing_rate,
            "have no revenue",
            "Every order has a revenue.",
            "revenue_json_type IN ('MISSING', 'NULL')",
        ),
        order_finding(
            "payload.revenue_non_numeric",
            "Revenue not a JSON number",
            "revenue_non_numeric",
            rules.revenue_non_numeric_rate,
            "carry a revenue that is not a JSON number",
            "Every revenue is a JSON number.",
            f"revenue_json_type NOT IN ('MISSING', 'NULL', {numeric})",
        ),
        order_finding(
            "payload.revenue_negative",
            "Negative revenue",
            "revenue_negative",
            rules.revenue_negative_rate,
            "have a negative revenue",
            "No revenue is negative.",
            "revenue < 0",
        ),
        order_finding(
            "payload.revenue_zero",
            "Zero-revenue orders",
            "revenue_zero",
            rules.revenue_zero_rate,
            f"have revenue 0 ({zero_all_null:,} of them with a single all-null item)",
            "No order has revenue 0.",
            "revenue = 0",
        ),
        order_finding(
            "payload.items_missing",
            "Order without items",
            "items_missing",
            rules.items_missing_rate,
            "have no items",
            "Every order lists its items.",
            "coalesce(item_count, 0) = 0 AND payload_error IS NULL",
        ),
    ]


def _item_findings(ctx: CheckContext, items: pd.DataFrame, mismatch: pd.DataFrame) -> list[Finding]:
    """Revenue ≠ the sum of item prices, item prices missing, item fields missing."""
    rules = ctx.rules.payload
    return [
        counted(
            ctx,
            "payload.revenue_item_mismatch",
            "Revenue ≠ sum of item prices",
            "revenue_mismatch_rate",
            rules.revenue_mismatch_rate,
            mismatch["mismatched"].to_dict(),
            mismatch["comparable"].to_dict(),
            lambda n, span, ds: (
                f"{n:,} order(s) ({span} of a day's orders with every item priced) have a revenue "
                f"that differs from the sum of item_price by more than {rules.revenue_tolerance} "
                f"({fmt_dates(ds)})"
            ),
            "Revenue equals the sum of item prices wherever all prices are present.",
        ),
        counted(
            ctx,
            "payload.item_price_missing",
            "Item price missing",
            "item_price_missing_rate",
            rules.item_price_missing_rate,
            items["price_missing"].to_dict(),
            items["items"].to_dict(),
            lambda n, span, ds: (
                f"{n:,} order item(s) ({span} of a day's items) have no item_price while their "
                f"orders still have a revenue ({fmt_dates(ds)})"
            ),
            "Every order item has a price.",
            lambda ds: ctx.samples(
                f"item_price IS NULL AND NOT {ALL_NULL_ITEM}",
                ITEM_COLUMNS,
                ds,
                "stg_purchase_items",
                "event_id, line_number",
            ),
        ),
        counted(
            ctx,
            "payload.item_fields_missing",
            "Item id, name or quantity missing",
            "item_fields_missing_rate",
            rules.item_fields_missing_rate,
            items["fields_missing"].to_dict(),
            items["items"].to_dict(),
            lambda n, span, ds: (
                f"{n:,} order item(s) ({span} of a day's items) lack an item_id, item_name or "
                f"quantity ({fmt_dates(ds)})"
            ),
            "Every order item has an id, a name and a quantity.",
            lambda ds: ctx.samples(
                f"NOT {ALL_NULL_ITEM} AND (item_id IS NULL OR item_name IS NULL OR quantity IS NULL)",
                ITEM_COLUMNS,
                ds,
                "stg_purchase_items",
                "event_id, line_number",
            ),
        ),
    ]


def _non_integer_revenue(ctx: CheckContext, orders: pd.DataFrame) -> Finding:
    """Revenues with cents: valid amounts, said once with the first ten values."""
    non_int = orders["revenue_non_integer"]
    non_int_days = [d.isoformat() for d, n in non_int.items() if n]
    values = ctx.rows(f"""SELECT revenue FROM stg_events WHERE revenue <> floor(revenue) AND {ctx.in_range()}
                          ORDER BY event_id LIMIT 10""")
    return fixed(
        ctx,
        "payload.revenue_non_integer",
        "Non-integer revenue",
        "non_integer_revenues",
        ctx.rules.payload.non_integer_revenue,
        non_int_days,
        int(non_int.sum()),
        f"{int(non_int.sum()):,} order(s) have a non-integer revenue ({', '.join(str(v['revenue']) for v in values)}) "
        f"({fmt_dates(non_int_days)})",
        "Every revenue is a whole number.",
        ctx.samples("revenue <> floor(revenue)", ORDER_COLUMNS, non_int_days),
    )
