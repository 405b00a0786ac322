"""``rpt_reconciliation``: does the output account for every input row and every cent?

Grain: one row per check per run; partition key ``run_end`` (the run's last date).
Columns: check, left, right, difference (right − left), status ('ok' | 'warn' | 'error'), detail
(the breakdown of the right side), scope_start, scope_end (dates the check covers), mode,
run_start, run_end (the dates the run was asked for).

Checks (E = dates whose fct_sessions partitions the run writes, O = dates of its order partitions):

``raw_rows``
    stg_events + stg_rejects rows of E  =  events in written sessions + events continuing a session
    of an earlier partition (``continuing_earlier_sessions``; those continuing a session of an
    unpublished day apart, ``continuing_unpublished_day_sessions``) + bot events (dropped with
    exclude_bots) + events without client id + stg_rejects rows. Nothing is silently dropped.
``session_ids_unique``
    written sessions = distinct session ids.
``sessions_written``
    sessions built for E = fct_sessions rows written (nothing lost between the build and the files).
``purchase_events``
    purchase events of O  =  fct_orders + fct_order_rejects (by reason: replay, zero revenue, …).
``revenue_orders``
    raw revenue of O's purchase events  =  order revenue + excluded revenue by reason (cents).
``order_keys_unique``
    fct_orders rows = distinct order_key.
``orders_in_sessions``
    orders with a client id and a human user agent (all, without exclude_bots) = those whose
    session_id is a session in fct_sessions (written now or earlier). An order whose session began
    on an *unpublished* day (a staged day before the run's dates that has no published session:
    the gate stopped it or its outputs were quarantined) is a correct order, published with all its
    revenue, whose session is not in fct_sessions: such orders make the check a 'warn' that names,
    per unpublished day, the orders, their order keys and their revenue (and its share of the
    orders' revenue). Any other order without a published session is an 'error'.
``attribution_revenue_<model>``
    raw revenue  =  the model's attributed revenue + excluded revenue (cents; attribution is
    exact to the cent per order).
``attribution_credit_<model>``
    orders of O  =  the model's summed credit (1 per order).
``item_prices_vs_revenue``
    orders whose items all have a price: Σ revenue = Σ item_price. A 'warn' (the export says
    revenue equals the sum of line totals; a gap is a data finding, not a lost row).

An 'error' status on any check makes the run's status 'error' (the runner stops and quarantines
the run's outputs; nothing is published); 'warn' is reported and does not stop.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import pandas as pd

STATUS_ORDER = {"ok": 0, "warn": 1, "error": 2}
RECONCILIATION_COLUMNS = (
    "check",
    "left",
    "right",
    "difference",
    "status",
    "detail",
    "scope_start",
    "scope_end",
    "mode",
)


@dataclass(frozen=True)
class Check:
    check: str
    left: float
    right: float
    detail: str = ""
    tolerance: float = 0.0
    severity: str = "error"  # status when left != right
    scope: tuple[date, date] | None = None

    def status(self) -> str:
        return "ok" if abs(self.right - self.left) <= self.tolerance else self.severity


def cents_to_amount(cents: int) -> float:
    return round(int(cents) / 100.0, 2)


def breakdown(parts: dict[str, float | int]) -> str:
    """'a=1 + b=2' with zero parts left out (the first part always shown)."""
    items = list(parts.items())
    shown = [items[0]] + [(k, v) for k, v in items[1:] if v] if items else []
    return " + ".join(f"{k}={_fmt(v)}" for k, v in shown)


def _fmt(v: float | int) -> str:
    if isinstance(v, float) and not float(v).is_integer():
        return f"{v:.2f}"
    return str(int(v))


def reconciliation_frame(checks: list[Check], mode: str) -> pd.DataFrame:
    """The rpt_reconciliation rows of one run, in check order."""
    rows = []
    for c in checks:
        start, end = c.scope if c.scope else (None, None)
        rows.append(
            {
                "check": c.check,
                "left": float(c.left),
                "right": float(c.right),
                "difference": round(float(c.right) - float(c.left), 6),
                "status": c.status(),
                "detail": c.detail,
                "scope_start": start,
                "scope_end": end,
                "mode": mode,
            }
        )
    return pd.DataFrame(rows, columns=list(RECONCILIATION_COLUMNS))


def overall_status(frame: pd.DataFrame) -> str:
    """Worst status of the checks ('ok' when there are none)."""
    if frame.empty:
        return "ok"
    return max(frame["status"], key=lambda s: STATUS_ORDER[s])


def _scalar(expr) -> int | float:
    value = expr.execute()
    return 0 if value is None or pd.isna(value) else value


def _scalars(t, **metrics) -> dict[str, int | float]:
    """Several aggregates of one table in one query (each query is compiled and scans its inputs),
    NULL (an empty table's sum) as 0; integers stay exact (through Arrow, not a float frame)."""
    row = t.aggregate(**metrics).to_pyarrow().to_pylist()[0]
    return {name: 0 if value is None else value for name, value in row.items()}


def _cents(revenue) -> object:
    """Integer cents of a revenue column (NULL counts as 0)."""
    return (revenue.fill_null(0) * 100).round().cast("int64")


def _event_checks(
    events_e,
    rejects_e_count: int,
    continuing_events,
    sessions_out,
    sessions_written: int | None,
    exclude_bots: bool,
    unpublished_sessions: Callable[[], object | None],
    scope,
) -> list[Check]:
    """raw_rows, session_ids_unique and sessions_written over the dates whose sessions the run writes."""
    ev = _scalars(
        events_e,
        n=events_e.count(),
        no_id=events_e.count(where=events_e.client_id.isnull()),
        bots=events_e.count(where=events_e.client_id.notnull() & events_e.is_bot),
    )
    n_events, no_id, bots = int(ev["n"]), int(ev["no_id"]), int(ev["bots"]) if exclude_bots else 0
    ses = _scalars(
        sessions_out,
        n=sessions_out.count(),
        ids=sessions_out.session_id.nunique(),
        events=sessions_out.n_events.sum(),
    )
    n_sessions, in_sessions = int(ses["n"]), int(ses["events"])
    continuing = int(_scalar(continuing_events.count()))
    # Events continuing a session that began on an unpublished day are in no published session.
    continuing_unpublished = 0
    if continuing and (unpublished := unpublished_sessions()) is not None:
        on_unpublished = continuing_events.session_id.isin(unpublished.session_id)
        continuing_unpublished = int(_scalar(continuing_events.filter(on_unpublished).count()))
    checks = [
        Check(
            "raw_rows",
            n_events + rejects_e_count,
            in_sessions + continuing + bots + no_id + rejects_e_count,
            breakdown(
                {
                    "in_sessions": in_sessions,
                    "continuing_earlier_sessions": continuing - continuing_unpublished,
                    "continuing_unpublished_day_sessions": continuing_unpublished,
                    "bot_events": bots,
                    "no_client_id": no_id,
                    "stg_rejects": rejects_e_count,
                }
            ),
            scope=scope,
        ),
        Check(
            "session_ids_unique",
            n_sessions,
            int(ses["ids"]),
            f"sessions={n_sessions}",
            scope=scope,
        ),
    ]
    if sessions_written is not None:  # numbering and order metrics are 1:1 joins: none lost or doubled
        checks.append(Check("sessions_written", n_sessions, sessions_written, "fct_sessions rows written", scope=scope))
    return checks


@dataclass(frozen=True)
class _Purchases:
    """The left side every order and attribution check balances against, and the excluded part of
    the right side (rejected purchase events by reason)."""

    n_purchases: int
    raw_cents: int
    n_orders: int
    rejected_by_reason: dict[str, int]  # rejected_<reason> -> purchase events
    excluded_by_reason: dict[str, float]  # excluded_<reason> -> revenue (amount)
    excluded_cents: int


def _purchases(purchases_o, orders_out, rejects_out) -> _Purchases:
    by_reason = (
        rejects_out.group_by("reason")
        .aggregate(n=rejects_out.count(), cents=_cents(rejects_out.revenue).sum())
        .order_by("reason")
        .to_pandas()
    )
    raw = _scalars(purchases_o, n=purchases_o.count(), cents=_cents(purchases_o.revenue).sum())
    return _Purchases(
        n_purchases=int(raw["n"]),
        raw_cents=int(raw["cents"]),
        n_orders=int(_scalar(orders_out.count())),
        rejected_by_reason={f"rejected_{r}": int(n) for r, n in zip(by_reason["reason"], by_reason["n"])},
        excluded_by_reason={
            f"excluded_{r}": cents_to_amount(c) for r, c in zip(by_reason["reason"], by_reason["cents"])
        },
        excluded_cents=int(by_reason["cents"].sum()) if len(by_reason) else 0,
    )


def unpublished_days(window_sessions, known_session_ids, session_dates: list[date]) -> list[date]:
    """The *unpublished* days among the context days of a run: days before the dates it writes
    on which it built sessions (``window_sessions``: session_id, session_date; every session of the
    staged days it read) none of which is published or written (``known_session_ids``). Such a day
    was staged but stopped by its gate or quarantined, and a run never writes it for its successor
    (``puffy.transform.pipeline``). Two tiny queries; the context days are two or three."""
    w = window_sessions.select("session_id", "session_date")
    context = w.filter(~w.session_date.isin(session_dates))
    built = set(context.select("session_date").distinct().to_pandas()["session_date"])
    if not built:
        return []
    known = context.filter(context.session_id.isin(known_session_ids.session_id))
    published = set(known.select("session_date").distinct().to_pandas()["session_date"])
    return sorted(pd.Timestamp(d).date() for d in built - published)


@dataclass(frozen=True)
class UnpublishedDayOrders:
    """The orders of one run whose session began on one unpublished day."""

    day: date
    order_keys: tuple[str, ...]
    cents: int


#: Order keys a detail names per unpublished day before it says how many more there are.
MAX_ORDER_KEYS_NAMED = 10


def _orders_on_unpublished_days(unlinked, unpublished_sessions) -> list[UnpublishedDayOrders]:
    """``unlinked`` orders whose session began on an unpublished day, per day (tiny: a few rows)."""
    s = unpublished_sessions.select(_sid="session_id", _day="session_date")
    j = unlinked.inner_join(s, unlinked.session_id == s._sid)
    rows = j.select("order_key", "_day", cents=_cents(j.revenue)).to_pandas()
    out = []
    for day, g in rows.sort_values(["_day", "order_key"]).groupby("_day", sort=True):
        out.append(UnpublishedDayOrders(pd.Timestamp(day).date(), tuple(g["order_key"]), int(g["cents"].sum())))
    return out


def _unpublished_detail(days: list[UnpublishedDayOrders], order_cents: int) -> str:
    """Per unpublished day: how many orders, their revenue and its share, and which orders."""
    parts = []
    for d in days:
        keys = ", ".join(d.order_keys[:MAX_ORDER_KEYS_NAMED])
        if len(d.order_keys) > MAX_ORDER_KEYS_NAMED:
            keys += f" and {len(d.order_keys) - MAX_ORDER_KEYS_NAMED} more"
        share = d.cents / order_cents if order_cents else 0.0
        n = len(d.order_keys)
        parts.append(
            f"session began on {d.day}, a day not published: {n} order{'s' if n != 1 else ''}, "
            f"revenue {cents_to_amount(d.cents):.2f} ({share:.1%} of order revenue) ({keys})"
        )
    last = max(d.day for d in days)
    return (
        "; ".join(parts)
        + ". These orders and their revenue are published; their session is not in fct_sessions and "
        + f"their journeys and attribution miss it until their order date is run again after {last} is published"
    )


def _order_checks(
    p: _Purchases, orders_out, known_session_ids, unpublished_sessions: Callable[[], object | None], scope
) -> list[Check]:
    """purchase_events, revenue_orders, order_keys_unique and orders_in_sessions."""
    orders = _scalars(orders_out, cents=_cents(orders_out.revenue).sum(), keys=orders_out.order_key.nunique())
    order_cents = int(orders["cents"])
    eligible = orders_out.filter(orders_out.client_id.notnull() & ~orders_out.is_bot)
    is_linked = eligible.session_id.isin(known_session_ids.session_id).fill_null(False)
    linking = _scalars(eligible, n=eligible.count(), linked=eligible.count(where=is_linked))
    n_eligible, n_linked = int(linking["n"]), int(linking["linked"])
    sessions_detail, sessions_severity = f"orders with a client id and a human user agent={n_eligible}", "error"
    if n_linked < n_eligible:
        on_unpublished = []
        if (unpublished := unpublished_sessions()) is not None:
            on_unpublished = _orders_on_unpublished_days(eligible.filter(~is_linked), unpublished)
        n_unpublished = sum(len(d.order_keys) for d in on_unpublished)
        n_unexplained = n_eligible - n_linked - n_unpublished
        sessions_detail += "; " + breakdown(
            {
                "linked": n_linked,
                "session_on_unpublished_day": n_unpublished,
                "no_published_session": n_unexplained,
            }
        )
        if on_unpublished:
            sessions_detail += "; " + _unpublished_detail(on_unpublished, order_cents)
        # Orders on an unpublished day are correct and published with every cent: quarantining the
        # day would not link them (publishing that day and running this one again does), so they
        # warn, with their count and revenue; an order whose session is simply missing is an error.
        sessions_severity = "warn" if n_unexplained == 0 else "error"
    return [
        Check(
            "purchase_events",
            p.n_purchases,
            p.n_orders + sum(p.rejected_by_reason.values()),
            breakdown({"orders": p.n_orders, **p.rejected_by_reason}),
            scope=scope,
        ),
        Check(
            "revenue_orders",
            cents_to_amount(p.raw_cents),
            cents_to_amount(order_cents + p.excluded_cents),
            breakdown({"order_revenue": cents_to_amount(order_cents), **p.excluded_by_reason}),
            tolerance=0.001,
            scope=scope,
        ),
        Check(
            "order_keys_unique",
            p.n_orders,
            int(orders["keys"]),
            f"orders={p.n_orders}",
            scope=scope,
        ),
        Check(
            "orders_in_sessions",
            n_eligible,
            n_linked,
            sessions_detail,
            severity=sessions_severity,
            scope=scope,
        ),
    ]


def _attribution_checks(p: _Purchases, attribution_out, models: list[str], scope) -> list[Check]:
    """Per model: its revenue and its credit balance against the orders. A model missing from the
    table counts as attributing nothing, so its checks fail (when there was anything to attribute)
    instead of disappearing."""
    per_model = (
        attribution_out.group_by("model")
        .aggregate(
            cents=_cents(attribution_out.attributed_revenue).sum(),
            credit=attribution_out.credit.sum(),
        )
        .to_pandas()
        .set_index("model")
    )
    checks = []
    for model in models:
        cents = int(per_model["cents"].get(model, 0))
        credit = float(per_model["credit"].get(model, 0.0))
        checks.append(
            Check(
                f"attribution_revenue_{model}",
                cents_to_amount(p.raw_cents),
                cents_to_amount(cents + p.excluded_cents),
                breakdown({"attributed": cents_to_amount(cents), **p.excluded_by_reason}),
                tolerance=0.001,
                scope=scope,
            )
        )
        checks.append(
            Check(
                f"attribution_credit_{model}",
                p.n_orders,
                round(credit, 6),
                "Σ credit over orders",
                tolerance=1e-6,
                scope=scope,
            )
        )
    return checks


def _item_price_check(orders_out, items_out, scope) -> Check:
    """Σ revenue = Σ item_price over orders whose items all have a price (a gap is a data finding: 'warn')."""
    priced = orders_out.filter(~orders_out.has_missing_item_prices & (orders_out.item_count > 0))
    orders = _scalars(priced, n=priced.count(), cents=_cents(priced.revenue).sum())
    n_priced, priced_cents = int(orders["n"]), int(orders["cents"])
    priced_items = items_out.filter(items_out.order_key.isin(priced.order_key))
    items_cents = int(_scalar(_cents(priced_items.item_price).sum()))
    return Check(
        "item_prices_vs_revenue",
        cents_to_amount(priced_cents),
        cents_to_amount(items_cents),
        f"orders with every item priced={n_priced}",
        tolerance=0.001,
        severity="warn",
        scope=scope,
    )


def compute_checks(
    *,
    events_e,
    rejects_e_count: int,
    continuing_events,
    sessions_out,
    sessions_written: int | None = None,
    exclude_bots: bool,
    purchases_o,
    orders_out,
    items_out,
    rejects_out,
    attribution_out,
    known_session_ids,
    models: list[str],
    session_dates: list[date],
    order_dates: list[date],
    window_sessions=None,
) -> list[Check]:
    """Compute every check with small Ibis aggregates (one query per table and question).

    ``window_sessions`` (session_id, session_date): every session the run built, context days
    included. With it, orders and continuing events whose session began on an unpublished day
    (``unpublished_days``) are told apart from lost ones; without it they count as lost.
    """

    @functools.cache
    def unpublished() -> object | None:
        """The sessions that began on an unpublished day (None: there are none), found when first
        asked: a run without continuing events and with every order linked never asks."""
        if window_sessions is None:
            return None
        days = unpublished_days(window_sessions, known_session_ids, session_dates)
        return window_sessions.filter(window_sessions.session_date.isin(days)) if days else None

    checks: list[Check] = []
    if session_dates:
        checks += _event_checks(
            events_e,
            rejects_e_count,
            continuing_events,
            sessions_out,
            sessions_written,
            exclude_bots,
            unpublished,
            (min(session_dates), max(session_dates)),
        )
    o_scope = (min(order_dates), max(order_dates)) if order_dates else None
    purchases = _purchases(purchases_o, orders_out, rejects_out)
    checks += _order_checks(purchases, orders_out, known_session_ids, unpublished, o_scope)
    checks += _attribution_checks(purchases, attribution_out, models, o_scope)
    checks.append(_item_price_check(orders_out, items_out, o_scope))
    return checks
