"""The report's figures: headline KPIs, their change vs the previous period, and the breakdowns.

Pure functions from the period's frames (see ``puffy.report.data``) to small frames / dicts.

Definitions used throughout (also in ``docs/executive_report.md``):

* **sessions** — non-bot sessions (bots never buy and would only dilute every rate);
* **orders / revenue** — every row of ``fct_orders`` (revenue is revenue, whichever session or
  user agent it came with); zero-revenue "orders" and replays are already excluded upstream;
* **AOV** — revenue / orders;
* **conversion rate** — share of sessions with at least one purchase (``purchased``). Orders
  without a session (no client id) count in revenue but not in this rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from typing import NamedTuple

import numpy as np
import pandas as pd

from puffy.report import stats
from puffy.report.data import Period, PeriodData, date_range
from puffy.report.evidence import Family, HoldoutDesign, comparison, control, holdout_design
from puffy.report.movements import Windows, change_point, comparison_windows, decompose
from puffy.report.params import ReportParams

KPI_NAMES = ("revenue", "orders", "aov", "sessions", "conversion_rate")
KPI_LABELS = {
    "revenue": "Revenue",
    "orders": "Orders",
    "aov": "Average order value",
    "sessions": "Sessions",
    "conversion_rate": "Conversion rate",
}
FUNNEL_STEPS = ("sessions", "viewed_product", "added_to_cart", "started_checkout", "purchased")
FUNNEL_LABELS = {
    "sessions": "Session",
    "viewed_product": "Product view",
    "added_to_cart": "Add to cart",
    "started_checkout": "Checkout",
    "purchased": "Purchase",
}


def _ratio(num: float, den: float) -> float:
    """num / den, NaN when the denominator is 0 (a rate of nothing is unknown, not zero)."""
    return float(num) / float(den) if den else math.nan


def headline(human_sessions: pd.DataFrame, orders: pd.DataFrame) -> dict[str, float]:
    """Revenue, orders, AOV, sessions, purchasing sessions and conversion rate of one period."""
    revenue = float(orders["revenue"].sum())
    n_orders = int(len(orders))
    n_sessions = int(len(human_sessions))
    buyers = int(human_sessions["purchased"].sum())
    return {
        "revenue": revenue,
        "orders": n_orders,
        "aov": _ratio(revenue, n_orders),
        "sessions": n_sessions,
        "purchasing_sessions": buyers,
        "conversion_rate": _ratio(buyers, n_sessions),
    }


def with_changes(current: dict, previous: dict | None) -> dict[str, dict]:
    """Per KPI: value, previous value, absolute change and relative change (None without previous).

    The conversion rate's change is best read in percentage points (``change``); the others in %
    (``change_pct``).
    """
    out = {}
    for name in KPI_NAMES:
        value = current[name]
        prev = None if previous is None else previous[name]
        change = None if prev is None or _nan(prev) or _nan(value) else value - prev
        change_pct = None if change is None or not prev else change / prev
        out[name] = {
            "label": KPI_LABELS[name],
            "value": value,
            "previous": prev,
            "change": change,
            "change_pct": change_pct,
        }
    return out


def _nan(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def daily(human_sessions: pd.DataFrame, orders: pd.DataFrame, days: list[date]) -> pd.DataFrame:
    """One row per calendar day of the period: sessions, purchasing sessions, orders, revenue,
    conversion rate, AOV. Days without data show 0 sessions/orders (and NaN rates)."""
    s = human_sessions.groupby("session_date").agg(
        sessions=("session_id", "size"), purchasing_sessions=("purchased", "sum")
    )
    o = orders.groupby("order_date").agg(orders=("order_key", "size"), revenue=("revenue", "sum"))
    out = pd.DataFrame(index=pd.Index(days, name="date")).join(s).join(o).fillna(0)
    out = out.astype({"sessions": "int64", "purchasing_sessions": "int64", "orders": "int64", "revenue": "float64"})
    out["conversion_rate"] = out["purchasing_sessions"] / out["sessions"].where(out["sessions"] > 0)
    out["aov"] = out["revenue"] / out["orders"].where(out["orders"] > 0)
    return out


def conversion_table(human_sessions: pd.DataFrame, by: str, level: float = 0.95) -> pd.DataFrame:
    """Sessions, purchasing sessions, conversion rate with its Wilson interval, orders and session
    revenue per value of ``by``; sorted by sessions, largest first."""
    g = human_sessions.groupby(by, dropna=False).agg(
        sessions=("session_id", "size"),
        purchasing_sessions=("purchased", "sum"),
        orders=("n_orders", "sum"),
        revenue=("revenue", "sum"),
    )
    g = g.sort_values(["sessions", "purchasing_sessions"], ascending=False)
    rates = [stats.wilson_interval(int(x), int(n), level) for x, n in zip(g["purchasing_sessions"], g["sessions"])]
    g["conversion_rate"] = [r.rate for r in rates]
    g["ci_low"] = [r.low for r in rates]
    g["ci_high"] = [r.high for r in rates]
    g["share_of_sessions"] = g["sessions"] / g["sessions"].sum()
    return g


def funnel_by_device(human_sessions: pd.DataFrame) -> pd.DataFrame:
    """Per device: a nested funnel — a session counts at a step only if it reached every earlier one.

    ``<step>`` is the number of sessions that reached the step *through* the previous steps,
    ``<step>_rate`` its share of the previous step. Purchasing sessions that skipped an observed
    step (no product view, cart or checkout event: on the real export, purchases on the checkout
    host in a session of their own) are not in the funnel's last step: ``purchased_skipped``
    counts them apart, and ``purchased_all`` is every purchasing session (the conversion rate's
    numerator), so ``purchased + purchased_skipped == purchased_all``.
    """
    df = human_sessions.assign(sessions=True)
    reached = pd.Series(True, index=df.index)
    nested = {}
    for step in FUNNEL_STEPS:
        reached = reached & df[step].astype(bool)
        nested[step] = reached
    frame = pd.DataFrame(nested).assign(
        device_type=df["device_type"].to_numpy(), purchased_all=df["purchased"].astype(bool).to_numpy()
    )
    frame["purchased_skipped"] = frame["purchased_all"] & ~frame["purchased"]
    counts = frame.groupby("device_type")[list(FUNNEL_STEPS) + ["purchased_all", "purchased_skipped"]].sum()
    counts = counts.astype("int64").sort_values("sessions", ascending=False)
    for prev, step in zip(FUNNEL_STEPS, FUNNEL_STEPS[1:]):
        counts[f"{step}_rate"] = counts[step] / counts[prev].where(counts[prev] > 0)
    counts["conversion_rate"] = counts["purchased_all"] / counts["sessions"].where(counts["sessions"] > 0)
    return counts


def weakest_step(funnel: pd.DataFrame, device: str, reference: str | None = None) -> tuple[str, str, float] | None:
    """(from step, to step, rate) of ``device``'s weakest funnel step.

    With a ``reference`` device, the weakest step is the one where ``device`` falls furthest short
    of the reference (smallest ratio of the two step rates): every device loses most people at
    add-to-cart, so the absolute lowest rate would always name the same step and explain nothing.
    Without one, it is the step with the lowest rate.
    """
    if device not in funnel.index:
        return None
    steps = list(zip(FUNNEL_STEPS, FUNNEL_STEPS[1:]))
    rates = {(a, b): funnel.loc[device, f"{b}_rate"] for a, b in steps}
    rates = {k: float(v) for k, v in rates.items() if not _nan(v)}
    if not rates:
        return None
    if reference is not None and reference in funnel.index and reference != device:
        ref = {(a, b): funnel.loc[reference, f"{b}_rate"] for a, b in steps}
        ratios = {k: v / ref[k] for k, v in rates.items() if not _nan(ref[k]) and ref[k] > 0}
        if ratios:
            (a, b) = min(ratios, key=ratios.get)
            return a, b, rates[(a, b)]
    (a, b), rate = min(rates.items(), key=lambda kv: kv[1])
    return a, b, rate


def new_vs_returning(human_sessions: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Conversion table for new vs returning visitors (the client's first session or a later one)."""
    df = human_sessions.assign(visitor=np.where(human_sessions["is_returning_client"], "Returning", "New"))
    table = conversion_table(df, "visitor", level)
    table["aov"] = table["revenue"] / table["orders"].where(table["orders"] > 0)
    return table


def product_mix(items: pd.DataFrame, orders: pd.DataFrame, top: int = 8) -> dict:
    """Revenue by product from the order lines, and how much of the period it can describe.

    ``item_price`` is the line total (already × quantity). Orders with any NULL item price
    (``has_missing_item_prices``, or a NULL price on one of its lines) cannot be split by product:
    their revenue is reported separately as "unknown mix" rather than guessed.
    Returns ``table`` (product, lines, quantity, revenue, share of priced revenue; top products + Other),
    ``orders_missing``, ``revenue_missing``, ``orders_priced``, ``revenue_priced``, ``share_missing``.
    """
    in_period = items[items["order_key"].isin(orders["order_key"])]
    null_price_orders = set(in_period.loc[in_period["item_price"].isna(), "order_key"])
    flagged = set(orders.loc[orders["has_missing_item_prices"], "order_key"])
    missing = orders["order_key"].isin(null_price_orders | flagged)
    priced_lines = in_period[~in_period["order_key"].isin(null_price_orders | flagged)]
    name = (
        priced_lines["item_name"]
        .astype("object")
        .where(priced_lines["item_name"].notna(), priced_lines["item_id"].astype("object"))
    )
    by_product = (
        priced_lines.assign(product=name.fillna("(unnamed)"))
        .groupby("product")
        .agg(lines=("order_key", "size"), quantity=("quantity", "sum"), revenue=("item_price", "sum"))
        .sort_values(["revenue", "lines"], ascending=False)
    )
    if len(by_product) > top + 1:  # one product past ``top`` keeps its name: "Other (1 products)" saves no row
        rest = by_product.iloc[top:]
        other = pd.DataFrame(
            {"lines": [rest["lines"].sum()], "quantity": [rest["quantity"].sum()], "revenue": [rest["revenue"].sum()]},
            index=pd.Index([f"Other ({len(rest)} products)"]),
        )
        by_product = pd.concat([by_product.iloc[:top], other])
    by_product.index.name = "product"
    total = by_product["revenue"].sum()
    by_product["share"] = by_product["revenue"] / total if total else math.nan
    revenue_missing = float(orders.loc[missing, "revenue"].sum())
    revenue_total = float(orders["revenue"].sum())
    return {
        "table": by_product,
        "orders_missing": int(missing.sum()),
        "revenue_missing": revenue_missing,
        "orders_priced": int((~missing).sum()),
        "revenue_priced": revenue_total - revenue_missing,
        "share_missing": _ratio(revenue_missing, revenue_total),
    }


def later_id_collisions(orders: pd.DataFrame) -> int:
    """Orders whose transaction id an earlier, different order already used (one per extra order).

    ``is_transaction_id_collision`` is set on every order of an id once a second variant is known
    on the order's date, so two orders of one id on the same day are *both* flagged: counting the
    flag counts each pair twice. ``transaction_variant`` (1 = the id's first order) says which one
    came later. A partition written without the variant falls back on the flag (an overcount
    rather than a miss).
    """
    variant = pd.to_numeric(orders["transaction_variant"], errors="coerce")
    later = variant.gt(1) | (variant.isna() & orders["is_transaction_id_collision"].astype(bool))
    return int(later.sum())


def attribution_by_channel(attribution: pd.DataFrame, models: list[str]) -> pd.DataFrame:
    """Per channel and model: orders credited (sum of credit) and attributed revenue.

    Wide frame indexed by channel with columns ``orders_<model>``, ``revenue_<model>``,
    ``share_<model>`` (share of the model's attributed revenue). Models absent from the data are
    skipped.
    """
    present = [m for m in models if m in set(attribution["model"])]
    if not present:
        return pd.DataFrame(index=pd.Index([], name="channel"))
    g = (
        attribution[attribution["model"].isin(present)]
        .groupby(["channel", "model"])
        .agg(orders=("credit", "sum"), revenue=("attributed_revenue", "sum"))
        .reset_index()
    )
    wide = g.pivot(index="channel", columns="model", values=["orders", "revenue"]).fillna(0.0)
    out = pd.DataFrame(index=wide.index)
    for m in present:
        out[f"orders_{m}"] = wide[("orders", m)]
        out[f"revenue_{m}"] = wide[("revenue", m)].round(2)
        total = out[f"revenue_{m}"].sum()
        out[f"share_{m}"] = out[f"revenue_{m}"] / total if total else math.nan
    out.index.name = "channel"
    return out


def channel_performance(
    human_sessions: pd.DataFrame, attribution: pd.DataFrame, models: list[str], level: float = 0.95
) -> pd.DataFrame:
    """Sessions, conversion rate (Wilson interval) and, side by side, the orders and revenue each
    attribution model credits to every channel. A channel credited with orders but without a
    session in the period (e.g. Direct for orders with no session) still gets a row."""
    conv = conversion_table(human_sessions, "channel", level)[
        ["sessions", "purchasing_sessions", "conversion_rate", "ci_low", "ci_high", "share_of_sessions"]
    ]
    attr = attribution_by_channel(attribution, models)
    out = conv.join(attr, how="outer")
    out[["sessions", "purchasing_sessions"]] = out[["sessions", "purchasing_sessions"]].fillna(0).astype("int64")
    out = out.fillna({c: 0.0 for c in out.columns if c.startswith(("orders_", "revenue_", "share_"))})
    out.index.name = "channel"
    return out.sort_values(["sessions"] + [c for c in out.columns if c.startswith("revenue_")][:1], ascending=False)


def credit_ranges(attribution: pd.DataFrame, channel_credit: pd.DataFrame | None) -> pd.DataFrame:
    """Per channel: the lowest and highest revenue credited across every model and identity policy.

    From ``rpt_channel_credit`` (identity strict / stitched × model) when the warehouse has it,
    otherwise from ``fct_attribution`` (its one identity × every model). Columns credit_low,
    credit_high, credit_configured (last click under the configured identity), n_views (how many
    model × identity views the range spans)."""
    if channel_credit is not None and len(channel_credit):
        g = channel_credit.groupby(["identity", "model", "channel"])["attributed_revenue"].sum()
        configured = channel_credit[channel_credit["is_configured"].astype("boolean").fillna(False).astype(bool)]
    else:
        g = (
            attribution.assign(identity="configured")
            .groupby(["identity", "model", "channel"])["attributed_revenue"]
            .sum()
        )
        configured = attribution.assign(attributed_revenue=attribution["attributed_revenue"])
    if g.empty:
        return pd.DataFrame(columns=["credit_low", "credit_high", "credit_configured", "n_views"])
    wide = g.unstack(["identity", "model"]).fillna(0.0)
    last = configured[configured["model"] == "last_click"].groupby("channel")["attributed_revenue"].sum()
    out = pd.DataFrame({"credit_low": wide.min(axis=1), "credit_high": wide.max(axis=1)})
    out["credit_configured"] = last.reindex(out.index).fillna(0.0)
    out["n_views"] = wide.shape[1]
    out.index.name = "channel"
    return out.round(2)


def kept_channels(
    channels: pd.DataFrame,
    revenue_total: float,
    threshold: float,
    always: tuple[str, ...] = ("Direct", "Untracked journey"),
) -> list[str]:
    """Channels the tables must show on their own row: at least ``threshold`` of sessions, or of
    revenue under *any* model or identity (``credit_high``), and ``always`` when present. Every
    other channel may be folded into "Other"."""
    share_sessions = channels["sessions"] / max(1, channels["sessions"].sum())
    revenue_cols = [c for c in channels.columns if c.startswith("revenue_")]
    high = (
        channels["credit_high"]
        if "credit_high" in channels.columns
        else channels[revenue_cols].max(axis=1)
        if revenue_cols
        else pd.Series(0.0, index=channels.index)
    )
    share_revenue = high / revenue_total if revenue_total else high * 0
    keep = (share_sessions >= threshold) | (share_revenue >= threshold) | channels.index.isin(always)
    return [c for c in channels.index if keep[c]]


# --- everything the report shows, in one object -------------------------------------------------


@dataclass
class Figures:
    """Every figure of one report, computed once and shared by the notebook, narrative and PDF."""

    period: Period
    params: ReportParams
    current: dict  # headline() of the period
    previous: dict | None  # headline() of the previous period (None: not in warehouse)
    kpis: dict  # value of the period; change = recent window vs base window
    daily: pd.DataFrame  # daily() of the period
    trends: dict  # metric -> stats.Trend over the daily series
    aov: stats.Interval  # bootstrap interval of the AOV
    conversion_vs_previous: stats.ZTest | None  # the tests of the window comparison (see windows)
    aov_vs_previous: stats.Interval | None
    orders_vs_previous: stats.Interval | None
    revenue_per_day_vs_previous: stats.Interval | None
    sessions_per_day_vs_previous: stats.Interval | None
    channels: pd.DataFrame  # channel_performance() + z-test vs the rest + credit ranges
    funnel: pd.DataFrame  # funnel_by_device() (nested)
    device_tests: dict  # device -> stats.ZTest vs the reference device
    reference_device: str | None
    visitors: pd.DataFrame  # new_vs_returning()
    visitor_test: stats.ZTest | None  # returning vs new
    products: dict  # product_mix()
    logit: stats.LogitResult
    orders_without_session: int
    revenue_without_session: float
    bot_sessions: int
    models: list[str]  # attribution models present, in params order
    windows: Windows | None = None  # what changes are measured between
    base: dict | None = None  # headline() of the base window
    recent: dict | None = None  # headline() of the recent window
    by_channel: pd.DataFrame | None = None  # decompose() by channel
    by_device: pd.DataFrame | None = None  # decompose() by device
    change_points: dict = field(default_factory=dict)  # series -> ChangePoint
    channel_daily: pd.DataFrame | None = None  # sessions per day and channel
    family: Family | None = None  # every comparison, controlled together
    journeys: dict = field(default_factory=dict)  # untracked / stitched orders and revenue
    kept_channels: list = field(default_factory=list)  # channels never folded into "Other"
    holdout: HoldoutDesign | None = None
    caveats: list = field(default_factory=list)  # filled by narrative.data_caveats


#: Rows of the channel table that are not acquisition channels: a continuation session (checkout
#: host, payment return) converts by construction, and untracked journeys have no session. They are
#: neither compared with the rest of the site nor part of "the rest".
NOT_ACQUISITION = ("Continuation", "Untracked journey", "(none)")


def channel_vs_rest(channels: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Each acquisition channel's conversion rate vs all other acquisition sessions of the period
    (two-proportion z-test); continuation sessions are left out of both sides."""
    acq = channels[~channels.index.isin(NOT_ACQUISITION)]
    total_x, total_n = int(acq["purchasing_sessions"].sum()), int(acq["sessions"].sum())
    rows = {}
    for ch, r in acq.iterrows():
        x, n = int(r["purchasing_sessions"]), int(r["sessions"])
        t = stats.two_proportion_ztest(x, n, total_x - x, total_n - n, level)
        rows[ch] = {"rate_rest": t.rate2, "diff_vs_rest": t.diff, "p_vs_rest": t.p_value}
    return pd.DataFrame.from_dict(rows, orient="index", columns=["rate_rest", "diff_vs_rest", "p_vs_rest"])


def journey_summary(orders: pd.DataFrame) -> dict:
    """Orders and revenue by ``fct_orders.journey_status`` (tracked / stitched / untracked); the
    untracked share is the part of revenue no channel can be credited with."""
    status = orders["journey_status"].astype("object")
    known = status.notna()
    out = {"known": bool(known.any())}
    total_orders, total_revenue = len(orders), float(orders["revenue"].sum())
    for s in ("tracked", "stitched", "untracked"):
        m = status.eq(s)
        out[f"{s}_orders"] = int(m.sum())
        out[f"{s}_revenue"] = float(orders.loc[m, "revenue"].sum())
    out["untracked_order_share"] = _ratio(out["untracked_orders"], total_orders) if out["known"] else math.nan
    out["untracked_revenue_share"] = _ratio(out["untracked_revenue"], total_revenue) if out["known"] else math.nan
    return out


def _window(df: pd.DataFrame, column: str, days) -> pd.DataFrame:
    return df[df[column].isin(set(days))]


class _WindowFrames(NamedTuple):
    """The rows of the two windows a change is measured between (base, then recent)."""

    windows: Windows
    previous: dict | None  # headline() of the previous period when it is the base window
    base_sessions: pd.DataFrame
    base_orders: pd.DataFrame
    base_daily: pd.DataFrame
    recent_sessions: pd.DataFrame
    recent_orders: pd.DataFrame
    recent_daily: pd.DataFrame


class _WindowTests(NamedTuple):
    """The tests of the recent window against the base window (all None without a base)."""

    conversion: stats.ZTest | None = None
    aov: stats.Interval | None = None
    revenue_per_day: stats.Interval | None = None
    sessions_per_day: stats.Interval | None = None
    orders: stats.Interval | None = None


def _window_frames(data: PeriodData, days: list[date], day_table: pd.DataFrame) -> _WindowFrames:
    """The previous period against this one when both are loaded, else windows inside this period."""
    period, human = data.period, data.human_sessions
    windows = comparison_windows(period, days)
    if windows.basis == "previous" and data.previous_sessions is not None and data.previous_orders is not None:
        base_sessions = data.previous_sessions[~data.previous_sessions["is_bot"]]
        base_orders = data.previous_orders
        return _WindowFrames(
            windows,
            headline(base_sessions, base_orders),
            base_sessions,
            base_orders,
            daily(base_sessions, base_orders, list(windows.base)),
            human,
            data.orders,
            day_table,
        )
    if windows.basis == "previous":  # flagged complete but not loaded: fall back on halves
        windows = comparison_windows(
            Period(period.start, period.end, period.available, period.previous_start, period.previous_end, (), False),
            days,
        )
    return _WindowFrames(
        windows,
        None,
        _window(human, "session_date", windows.base),
        _window(data.orders, "order_date", windows.base),
        day_table.loc[list(windows.base)],
        _window(human, "session_date", windows.current),
        _window(data.orders, "order_date", windows.current),
        day_table.loc[list(windows.current)],
    )


def _kpis_between_windows(
    current: dict, previous: dict | None, base: dict | None, recent: dict | None, basis: str
) -> dict[str, dict]:
    """with_changes() of the period, each change restated as recent window vs base window: the
    windows the tests compare (without a previous period, with_changes alone has no change)."""
    kpis = with_changes(current, previous)
    if base is None:
        return kpis
    for name, k in kpis.items():
        prev, now = base[name], recent[name]
        change = None if _nan(prev) or _nan(now) else now - prev
        k.update(
            base=prev,
            recent=now,
            change=change,
            change_pct=(None if change is None or not prev else change / prev),
            basis=basis,
        )
    return kpis


def _window_tests(frames: _WindowFrames, base: dict, recent: dict, params: ReportParams) -> _WindowTests:
    level, seed, reps = params.confidence_level, params.bootstrap_seed, params.bootstrap_resamples
    return _WindowTests(
        conversion=stats.two_proportion_ztest(
            recent["purchasing_sessions"], recent["sessions"], base["purchasing_sessions"], base["sessions"], level
        ),
        aov=stats.bootstrap_mean_difference(
            frames.recent_orders["revenue"], frames.base_orders["revenue"], reps, seed, level
        ),
        revenue_per_day=stats.welch_test(frames.recent_daily["revenue"], frames.base_daily["revenue"], level),
        sessions_per_day=stats.welch_test(frames.recent_daily["sessions"], frames.base_daily["sessions"], level),
        orders=stats.count_ratio_test(recent["orders"], base["orders"], level),
    )


def _channel_table(data: PeriodData, models: list[str], level: float) -> pd.DataFrame:
    """channel_performance() with each channel vs the rest and its credit range; a channel that only
    has credit (no session) shows 0 sessions and 0 orders/revenue/credit where it has none."""
    channels = channel_performance(data.human_sessions, data.attribution, models, level)
    channels = channels.join(channel_vs_rest(channels, level))
    ranges = credit_ranges(data.attribution, data.channel_credit)
    channels = channels.join(ranges, how="outer")
    channels[["sessions", "purchasing_sessions"]] = (
        channels[["sessions", "purchasing_sessions"]].fillna(0).astype("int64")
    )
    channels = channels.fillna(
        {c: 0.0 for c in channels.columns if c.startswith(("orders_", "revenue_", "share_", "credit_"))}
    )
    channels.index.name = "channel"
    return channels


def _device_tests(funnel: pd.DataFrame, reference_device: str, level: float) -> tuple[str | None, dict]:
    """The reference device (the configured one when present, else the first of the funnel) and each
    other device's conversion tested against it."""
    ref_device = reference_device if reference_device in funnel.index else (funnel.index[0] if len(funnel) else None)
    device_tests = {}
    if ref_device is not None:
        rx, rn = int(funnel.loc[ref_device, "purchased_all"]), int(funnel.loc[ref_device, "sessions"])
        for dev, r in funnel.iterrows():
            if dev != ref_device:
                device_tests[dev] = stats.two_proportion_ztest(
                    int(r["purchased_all"]), int(r["sessions"]), rx, rn, level
                )
    return ref_device, device_tests


def _returning_vs_new(visitors: pd.DataFrame, level: float) -> stats.ZTest | None:
    if not {"New", "Returning"} <= set(visitors.index):
        return None
    ret, new = visitors.loc["Returning"], visitors.loc["New"]
    return stats.two_proportion_ztest(
        int(ret["purchasing_sessions"]),
        int(ret["sessions"]),
        int(new["purchasing_sessions"]),
        int(new["sessions"]),
        level,
    )


def _change_points(
    day_table: pd.DataFrame, channel_daily: pd.DataFrame, channels: pd.DataFrame, params: ReportParams
) -> dict:
    """Change points of the headline daily series, and of the daily sessions of each acquisition
    channel with at least ``fold_threshold`` of the sessions."""
    cps = {}
    cp_args = dict(
        min_segment=params.change_point_min_days,
        permutations=params.change_point_permutations,
        seed=params.bootstrap_seed,
    )
    for metric in ("sessions", "orders", "revenue", "conversion_rate"):
        cps[metric] = change_point(day_table[metric], metric, **cp_args)
    share = channels["sessions"] / max(1, channels["sessions"].sum())
    for ch in channel_daily.columns:
        if share.get(ch, 0) >= params.fold_threshold and ch not in NOT_ACQUISITION:
            cps[f"channel:{ch}"] = change_point(channel_daily[ch], f"{ch} sessions", **cp_args)
    return cps


def _holdout_for_top_channel(channels: pd.DataFrame, n_days: int, params: ReportParams) -> HoldoutDesign | None:
    """A holdout test sized for the channel with the most configured credit. Direct and the rows
    that are not acquisition channels are not candidates: there is no campaign to hold anyone out of."""
    candidates = channels.drop(
        index=[c for c in ("Direct", "Untracked journey", "Continuation", "(none)") if c in channels.index]
    )
    candidates = candidates[candidates["sessions"] > 0]
    if not len(candidates) or "credit_configured" not in candidates.columns:
        return None
    top = candidates["credit_configured"].idxmax()
    r = candidates.loc[top]
    return holdout_design(
        str(top),
        float(r["conversion_rate"]),
        float(r["sessions"]) / n_days,
        float(r["credit_low"]),
        float(r["credit_high"]),
        params.incrementality_detectable_drop,
        params.incrementality_holdout_share,
        params.alpha,
        params.power,
    )


def compute_figures(data: PeriodData, params: ReportParams) -> Figures:
    """All figures of the report for ``data`` (pure: same data and params, same figures)."""
    level = params.confidence_level
    period = data.period
    human = data.human_sessions
    days = date_range(period.start, period.end)
    current = headline(human, data.orders)
    day_table = daily(human, data.orders, days)
    frames = _window_frames(data, days, day_table)
    windows = frames.windows
    base = headline(frames.base_sessions, frames.base_orders) if windows.basis != "none" else None
    recent = headline(frames.recent_sessions, frames.recent_orders) if windows.basis != "none" else None
    kpis = _kpis_between_windows(current, frames.previous, base, recent, windows.basis)
    trends = {m: stats.linear_trend(day_table[m], level) for m in ("revenue", "orders", "sessions")}
    aov = stats.bootstrap_mean(data.orders["revenue"], params.bootstrap_resamples, params.bootstrap_seed, level)
    tests = _window_tests(frames, base, recent, params) if base is not None else _WindowTests()

    present = set(data.attribution["model"].dropna())
    models = [m for m in params.attribution_models if m in present]
    channels = _channel_table(data, models, level)
    funnel = funnel_by_device(human)
    ref_device, device_tests = _device_tests(funnel, params.reference_device, level)
    visitors = new_vs_returning(human, level)
    visitor_test = _returning_vs_new(visitors, level)
    logit = stats.conversion_logit(
        human, params.reference_channel, params.reference_device, params.min_level_conversions, level
    )

    # What moved: decomposition between the windows, change points of the daily series.
    by_channel = by_device = None
    if base is not None:
        by_channel = decompose(frames.recent_sessions, frames.base_sessions, "channel")
        by_device = decompose(frames.recent_sessions, frames.base_sessions, "device_type")
    channel_daily = human.groupby(["session_date", "channel"]).size().unstack(fill_value=0).reindex(days, fill_value=0)
    cps = _change_points(day_table, channel_daily, channels, params)
    family = _family(
        params,
        windows,
        kpis,
        trends,
        cps,
        channels,
        funnel,
        device_tests,
        visitor_test,
        logit,
        tests.conversion,
        tests.aov,
        tests.revenue_per_day,
        tests.sessions_per_day,
        tests.orders,
    )

    no_session = data.orders["session_id"].isna()
    return Figures(
        period=period,
        params=params,
        current=current,
        previous=frames.previous,
        kpis=kpis,
        daily=day_table,
        trends=trends,
        aov=aov,
        conversion_vs_previous=tests.conversion,
        aov_vs_previous=tests.aov,
        orders_vs_previous=tests.orders,
        revenue_per_day_vs_previous=tests.revenue_per_day,
        sessions_per_day_vs_previous=tests.sessions_per_day,
        channels=channels,
        funnel=funnel,
        device_tests=device_tests,
        reference_device=ref_device,
        visitors=visitors,
        visitor_test=visitor_test,
        products=product_mix(data.items, data.orders, params.top_products),
        logit=logit,
        orders_without_session=int(no_session.sum()),
        revenue_without_session=float(data.orders.loc[no_session, "revenue"].sum()),
        bot_sessions=int(data.sessions["is_bot"].sum()),
        models=models,
        windows=windows,
        base=base,
        recent=recent,
        by_channel=by_channel,
        by_device=by_device,
        change_points=cps,
        channel_daily=channel_daily,
        family=family,
        journeys=journey_summary(data.orders),
        kept_channels=kept_channels(channels, current["revenue"], params.fold_threshold),
        holdout=_holdout_for_top_channel(channels, len(days), params),
    )


def _family(
    params,
    windows,
    kpis,
    trends,
    cps,
    channels,
    funnel,
    device_tests,
    visitor_test,
    logit,
    conv_test,
    aov_test,
    rev_test,
    sess_test,
    orders_test,
) -> Family:
    """Every comparison the report makes, in one family under ``multiple_comparison_method``."""
    out = []
    label = windows.label
    if conv_test is not None:
        out.append(
            comparison(
                "change:conversion_rate",
                "change",
                f"conversion rate, {label}",
                conv_test.diff,
                conv_test.p_value,
                "two-proportion z-test",
            )
        )
        out.append(
            comparison(
                "change:aov",
                "change",
                f"average order value, {label}",
                aov_test.estimate,
                aov_test.p_value,
                "bootstrap of orders",
            )
        )
        out.append(
            comparison(
                "change:revenue",
                "change",
                f"revenue per day, {label}",
                rev_test.estimate,
                rev_test.p_value,
                "Welch t-test on days",
            )
        )
        out.append(
            comparison(
                "change:sessions",
                "change",
                f"sessions per day, {label}",
                sess_test.estimate,
                sess_test.p_value,
                "Welch t-test on days",
            )
        )
        out.append(
            comparison(
                "change:orders",
                "change",
                f"orders, {label}",
                orders_test.estimate - 1,
                orders_test.p_value,
                "exact test of two counts",
            )
        )
    for metric, t in trends.items():
        out.append(comparison(f"trend:{metric}", "trend", f"daily {metric} trend", t.slope, t.p_value, "OLS slope"))
    for key, cp in cps.items():
        if cp.day is not None:
            out.append(
                comparison(
                    f"changepoint:{key}",
                    "changepoint",
                    f"{cp.series} level shift from {cp.day}",
                    cp.after - cp.before,
                    cp.p_value,
                    "change point, permutation test",
                )
            )
    big = channels[(channels["sessions"] >= params.min_group_sessions) & ~channels.index.isin(NOT_ACQUISITION)]
    for ch, r in big.iterrows():
        out.append(
            comparison(
                f"channel:{ch}",
                "channel",
                f"{ch} conversion vs the rest of the site",
                r["diff_vs_rest"],
                r["p_vs_rest"],
                "two-proportion z-test",
            )
        )
    for dev, t in device_tests.items():
        if funnel.loc[dev, "sessions"] >= params.min_group_sessions:
            out.append(
                comparison(
                    f"device:{dev}",
                    "device",
                    f"{dev} conversion vs the reference device",
                    t.diff,
                    t.p_value,
                    "two-proportion z-test",
                )
            )
    if visitor_test is not None:
        out.append(
            comparison(
                "visitor:Returning",
                "visitor",
                "returning vs new visitors' conversion",
                visitor_test.diff,
                visitor_test.p_value,
                "two-proportion z-test",
            )
        )
    for _, r in logit.table.iterrows():
        out.append(
            comparison(
                f"logit:{r['variable']}:{r['level']}",
                "logit",
                f"odds ratio of {r['variable']} {r['level']} (adjusted model)",
                r["odds_ratio"] - 1,
                r["p_value"],
                "logistic regression",
            )
        )
    return control(out, params.multiple_comparison_method, params.alpha)
