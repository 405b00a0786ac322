"""The monitors: pure functions from small tables (one day's rows, a daily metric history) to findings.

Each finding has a stable ``id`` (the runbook in ``docs/monitoring.md`` has a section per id), a
severity from ``params/monitoring_rules.yaml``, and the metric / value / band / dates that made it
fire. Nothing here reads files or the clock: ``puffy.monitoring.run_monitoring`` gathers the inputs.

Finding ids:

freshness.partition_missing, freshness.partition_stale, freshness.missing_days,
completeness.empty_partition, completeness.row_count,
revenue.duplicate_order_key, revenue.duplicate_transaction_id, revenue.transaction_id_collision,
revenue.negative_revenue, revenue.zero_revenue_orders, revenue.missing_item_prices,
revenue.reconciliation_raw, revenue.reconciliation_attribution, revenue.reconciliation_skipped,
revenue.transform_reconciliation,
funnel.non_monotone, funnel.conversion_rate_out_of_band, funnel.orders_without_session,
mix.channel_share_drift, mix.revenue_share_drift, mix.direct_share_jump, mix.insufficient_history,
trend.<metric> (sessions, orders, revenue, conversion_rate, aov, client_id_null_rate, bot_share),
trend.insufficient_history, trend.metric_unavailable,
monitoring.monitor_failed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, timedelta

import pandas as pd

from puffy.dates import date_range, date_runs_text
from puffy.findings import LEGACY_STATUS, Finding, json_safe
from puffy.monitoring import stats
from puffy.monitoring.metrics import FUNNEL_STAGES
from puffy.monitoring.rules import FreshnessRules, FunnelRules, MixRules, RevenueRules, SegmentRules, TrendRules


def _fmt(x: float | None, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if isinstance(x, float) and math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if abs(x) < 1 and x != 0:
        return f"{x:.4f}"
    return f"{x:,.{digits}f}"


# --- freshness & completeness ---------------------------------------------------------------------


def check_partitions(
    run_date: date,
    now: datetime,
    audited_mtimes: dict[str, datetime | None],
    available: dict[str, list[date]],
    rules: FreshnessRules,
    audited_rows: dict[str, int] | None = None,
) -> list[Finding]:
    """The run date's partitions exist, are recent, are not empty; no days are missing before it.

    ``audited_mtimes``: table -> modification time of the run date's partition file in the audited
    warehouse (None when absent). ``available``: table -> dates with a partition (history + audited).
    """
    out: list[Finding] = []
    day = run_date.isoformat()
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    for table in rules.tables:
        mtime = audited_mtimes.get(table)
        if mtime is None:
            out.append(
                Finding(
                    "freshness.partition_missing",
                    rules.missing_partition_severity,
                    f"{table} has no partition for {day} in the audited warehouse",
                    metric=table,
                    dates=[day],
                )
            )
            continue
        age_hours = (now - mtime).total_seconds() / 3600
        if age_hours > rules.sla_hours:
            out.append(
                Finding(
                    "freshness.partition_stale",
                    rules.stale_partition_severity,
                    f"{table} partition for {day} was written {age_hours:.1f} h ago "
                    f"(SLA {rules.sla_hours:g} h): this run may not have rebuilt it",
                    metric=table,
                    value=age_hours,
                    band=(0.0, rules.sla_hours),
                    dates=[day],
                )
            )
        rows = (audited_rows or {}).get(table)
        if table in rules.nonempty_tables and rows == 0:
            out.append(
                Finding(
                    "completeness.empty_partition",
                    rules.empty_partition_severity,
                    f"{table} partition for {day} has no rows",
                    metric=table,
                    value=0,
                    dates=[day],
                )
            )
    for table in rules.tables:
        have = set(available.get(table, []))
        earlier = [d for d in have if d < run_date]
        if not earlier:
            continue  # nothing published before: the start of history is not a gap
        first = max(min(earlier), run_date - timedelta(days=rules.gap_window_days))
        missing = [d for d in date_range(first, run_date - timedelta(days=1)) if d not in have]
        if missing:
            out.append(
                Finding(
                    "freshness.missing_days",
                    rules.gap_severity,
                    f"{table} has no partition for {len(missing)} day(s) in the last "
                    f"{rules.gap_window_days} days: {', '.join(d.isoformat() for d in missing)}",
                    metric=table,
                    value=len(missing),
                    dates=[d.isoformat() for d in missing],
                )
            )
    return out


# --- revenue integrity ----------------------------------------------------------------------------


def check_duplicates(orders: pd.DataFrame, history: pd.DataFrame, run_date: date, rules: RevenueRules) -> list[Finding]:
    """Order keys must be unique; a transaction id used twice must be flagged as a collision.

    ``orders``: the run date's fct_orders (order_key, transaction_id, is_transaction_id_collision);
    ``history``: order_key, transaction_id of earlier days in the window (a key reused across days
    double counts just the same).
    """
    out: list[Finding] = []
    day = run_date.isoformat()
    keys = pd.concat([orders["order_key"], history.get("order_key", pd.Series(dtype=object))], ignore_index=True)
    dup_keys = sorted(set(keys[keys.duplicated(keep=False)]) & set(orders["order_key"]))
    if dup_keys:
        out.append(
            Finding(
                "revenue.duplicate_order_key",
                rules.duplicate_order_key_severity,
                f"{len(dup_keys)} order_key(s) of {day} appear more than once in fct_orders "
                f"(revenue is double counted): {', '.join(map(str, dup_keys[:5]))}",
                metric="order_key",
                value=len(dup_keys),
                band=(0, 0),
                dates=[day],
                details={"examples": [str(k) for k in dup_keys[:10]]},
            )
        )
    if "transaction_id" not in orders:
        return out
    day_tx = orders[["transaction_id"]].assign(
        collision=orders.get("is_transaction_id_collision", pd.Series(False, index=orders.index)).fillna(False)
    )
    hist_tx = history.reindex(columns=["transaction_id"]).assign(collision=False)
    all_tx = pd.concat([day_tx, hist_tx], ignore_index=True).dropna(subset=["transaction_id"])
    counts = all_tx.groupby("transaction_id").agg(n=("collision", "size"), flagged=("collision", "sum"))
    reused = counts[(counts["n"] > 1) & counts.index.isin(day_tx["transaction_id"].dropna())]
    handled = reused[reused["flagged"] >= reused["n"]].index.tolist()
    unhandled = reused[reused["flagged"] < reused["n"]].index.tolist()
    if unhandled:
        out.append(
            Finding(
                "revenue.duplicate_transaction_id",
                rules.duplicate_transaction_id_severity,
                f"{len(unhandled)} transaction id(s) of {day} belong to more than one order without "
                f"being flagged as collisions: {', '.join(map(str, sorted(unhandled)[:5]))}",
                metric="transaction_id",
                value=len(unhandled),
                band=(0, 0),
                dates=[day],
                details={"examples": sorted(map(str, unhandled))[:10]},
            )
        )
    if handled:
        out.append(
            Finding(
                "revenue.transaction_id_collision",
                rules.transaction_id_collision_severity,
                f"{len(handled)} transaction id(s) of {day} are used by different orders "
                f"(flagged is_transaction_id_collision, kept as separate orders): "
                f"{', '.join(map(str, sorted(handled)[:5]))}",
                metric="transaction_id",
                value=len(handled),
                band=(0, 0),
                dates=[day],
                details={"examples": sorted(map(str, handled))[:10]},
            )
        )
    return out


def check_revenue_values(
    orders: pd.DataFrame,
    rejects: pd.DataFrame | None,
    attribution: pd.DataFrame | None,
    run_date: date,
    rules: RevenueRules,
) -> list[Finding]:
    """No negative revenue; zero-revenue purchases and missing item prices stay rare."""
    out: list[Finding] = []
    day = run_date.isoformat()
    negative = int((orders["revenue"] < 0).sum())
    negative_attr = 0
    if attribution is not None and not attribution.empty:
        negative_attr = int((attribution["min_attributed_revenue"].fillna(0) < 0).sum())
    if negative or negative_attr:
        out.append(
            Finding(
                "revenue.negative_revenue",
                rules.negative_revenue_severity,
                f"{negative} order(s) with negative revenue and {negative_attr} attribution model(s) "
                f"with negative attributed revenue on {day}",
                metric="revenue",
                value=negative + negative_attr,
                band=(0, 0),
                dates=[day],
            )
        )
    zero = 0 if rejects is None or rejects.empty else int((rejects["revenue"] == 0).sum())
    purchases = len(orders) + (0 if rejects is None else len(rejects))
    share = zero / purchases if purchases else 0.0
    zr = rules.zero_revenue
    if zero >= zr.min_count and share > zr.max_share:
        out.append(
            Finding(
                "revenue.zero_revenue_orders",
                zr.severity,
                f"{zero} of {purchases} purchases on {day} have revenue 0 ({share:.1%}; band "
                f"<= {zr.max_share:.0%}); they are kept out of fct_orders in fct_order_rejects",
                metric="zero_revenue_share",
                value=share,
                band=(0.0, zr.max_share),
                dates=[day],
                details={"zero_revenue_purchases": zero, "purchases": purchases},
            )
        )
    if "has_missing_item_prices" in orders and len(orders):
        missing = float(orders["has_missing_item_prices"].fillna(False).astype(bool).mean())
        if missing > rules.missing_item_prices_max_share:
            out.append(
                Finding(
                    "revenue.missing_item_prices",
                    rules.missing_item_prices_severity,
                    f"{missing:.0%} of orders on {day} have no item prices (revenue is still present; "
                    f"item-level revenue is unknown)",
                    metric="missing_item_price_share",
                    value=missing,
                    band=(0.0, rules.missing_item_prices_max_share),
                    dates=[day],
                )
            )
    return out


def check_reconciliation(
    orders_revenue: float,
    rejected_revenue: float,
    raw_revenue: float | None,
    attribution: pd.DataFrame | None,
    n_orders: int,
    run_date: date,
    rules: RevenueRules,
) -> list[Finding]:
    """Raw purchase revenue = orders + rejects; each attribution model's total = orders' revenue."""
    out: list[Finding] = []
    day = run_date.isoformat()
    tol = rules.reconciliation_tolerance
    if raw_revenue is None:
        out.append(
            Finding(
                "revenue.reconciliation_skipped",
                "info",
                f"no stg_events partition for {day}: raw purchase revenue not reconciled",
                metric="raw_purchase_revenue",
                dates=[day],
            )
        )
    else:
        diff = raw_revenue - (orders_revenue + rejected_revenue)
        if abs(diff) > tol:
            out.append(
                Finding(
                    "revenue.reconciliation_raw",
                    rules.reconciliation_severity,
                    f"raw purchase revenue {raw_revenue:,.2f} != fct_orders {orders_revenue:,.2f} + "
                    f"rejects {rejected_revenue:,.2f} on {day} (difference {diff:,.2f})",
                    metric="raw_purchase_revenue",
                    value=diff,
                    band=(-tol, tol),
                    dates=[day],
                    details={"raw": raw_revenue, "orders": orders_revenue, "rejects": rejected_revenue},
                )
            )
    if attribution is None:
        return out  # no attribution partition: freshness reports it
    models = rules.attribution_models or sorted(attribution["model"].tolist())
    if not models and n_orders:
        models = ["(any model)"]  # orders but not one attribution row
    by_model = dict(zip(attribution["model"], attribution["attributed_revenue"]))
    for model in models:
        attributed = float(by_model.get(model, 0.0))
        diff = attributed - orders_revenue
        if abs(diff) > tol:
            out.append(
                Finding(
                    "revenue.reconciliation_attribution",
                    rules.reconciliation_severity,
                    f"{model}: attributed revenue {attributed:,.2f} != fct_orders revenue "
                    f"{orders_revenue:,.2f} on {day} (difference {diff:,.2f})",
                    metric=f"attributed_revenue[{model}]",
                    value=diff,
                    band=(-tol, tol),
                    dates=[day],
                    details={"model": model, "attributed": attributed, "orders": orders_revenue},
                )
            )
    return out


_OK_STATUSES = {"pass", "info", *LEGACY_STATUS}  # the transform still says 'ok'


def check_transform_reconciliation(report: pd.DataFrame | None, run_date: date) -> list[Finding]:
    """Surface the transform's own failing reconciliation checks (``rpt_reconciliation``)."""
    if report is None or report.empty or "status" not in report:
        return []
    out = []
    for row in report.to_dict("records"):
        status = str(row.get("status", "")).lower()
        if status in _OK_STATUSES:
            continue
        severity = "warn" if status in {"warn", "warning"} else "error"
        detail = row.get("detail")  # the check's breakdown: what the difference is made of
        out.append(
            Finding(
                "revenue.transform_reconciliation",
                severity,
                f"transform check '{row.get('check')}' is {status}: left {row.get('left')} vs right "
                f"{row.get('right')} (difference {row.get('difference')})"
                + (f": {detail}" if isinstance(detail, str) and detail else ""),
                metric=str(row.get("check")),
                value=json_safe(row.get("difference")),
                dates=[run_date.isoformat()],
            )
        )
    return out


# --- funnel ---------------------------------------------------------------------------------------

#: rate name -> (numerator stage, denominator stage)
FUNNEL_RATES = {
    "product_view_rate": ("viewed_product", "sessions"),
    "add_to_cart_rate": ("added_to_cart", "viewed_product"),
    "checkout_rate": ("started_checkout", "added_to_cart"),
    "purchase_rate": ("purchased", "started_checkout"),
    "session_conversion_rate": ("purchased", "sessions"),
}


def check_funnel(
    counts: dict[str, float], orders: int, orders_without_session: int, run_date: date, rules: FunnelRules
) -> list[Finding]:
    """sessions >= viewed product >= added to cart >= started checkout >= purchased; rates in bands."""
    out: list[Finding] = []
    day = run_date.isoformat()
    if any(pd.isna(counts.get(s)) for s in FUNNEL_STAGES):
        return out
    broken = [(a, b) for a, b in zip(FUNNEL_STAGES, FUNNEL_STAGES[1:]) if counts[b] > counts[a]]
    if broken:
        text = "; ".join(f"{b} {int(counts[b])} > {a} {int(counts[a])}" for a, b in broken)
        out.append(
            Finding(
                "funnel.non_monotone",
                rules.non_monotone_severity,
                f"funnel of non-bot sessions on {day} is not monotone: {text}",
                metric=",".join(f"{b}>{a}" for a, b in broken),
                value=max(counts[b] - counts[a] for a, b in broken),
                band=(None, 0),
                dates=[day],
                details={s: counts[s] for s in FUNNEL_STAGES},
            )
        )
    if counts["sessions"] >= rules.min_sessions:
        for rate, (num, den) in FUNNEL_RATES.items():
            band = rules.bands.get(rate)
            if band is None or counts[den] < rules.min_denominator:
                continue
            value = counts[num] / counts[den]
            if not band[0] <= value <= band[1]:
                out.append(
                    Finding(
                        "funnel.conversion_rate_out_of_band",
                        rules.band_severity,
                        f"{rate} ({num} / {den}) is {value:.2%} on {day}, outside [{band[0]:.2%}, {band[1]:.2%}]",
                        metric=rate,
                        value=value,
                        band=tuple(band),
                        dates=[day],
                        details={num: counts[num], den: counts[den]},
                    )
                )
    if orders:
        share = orders_without_session / orders
        if share > rules.max_orders_without_session_share:
            out.append(
                Finding(
                    "funnel.orders_without_session",
                    rules.orders_without_session_severity,
                    f"{orders_without_session} of {orders} orders on {day} ({share:.1%}) have no session "
                    f"(band <= {rules.max_orders_without_session_share:.0%}): they cannot be attributed "
                    f"to a channel",
                    metric="orders_without_session_share",
                    value=share,
                    band=(0.0, rules.max_orders_without_session_share),
                    dates=[day],
                )
            )
    return out


# --- marketing mix --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MixDay:
    """One day's channel mix against its baseline."""

    day: date
    total: float
    baseline_days: tuple[date, ...]
    psi: float | None = None
    chi2: float | None = None
    p_value: float | None = None
    dof: int = 0
    flagged: bool = False  # the drift test fired (PSI and chi-square)
    enough: bool = False  # baseline and day large enough to judge
    # session mix only (``session_mix``): Direct/Unassigned share on the day and over the same baseline
    direct_share: float | None = None
    baseline_direct_share: float | None = None
    direct_jump: bool = False  # the direct share rose by at least rules.direct_share_jump

    @property
    def any_flagged(self) -> bool:
        """Fired on drift or on a Direct share jump: the day then stays out of later baselines."""
        return self.flagged or self.direct_jump


def _mix_baseline(rules: MixRules):
    def choose(day: date, clean: list[date]) -> list[date]:
        lo = day - timedelta(days=rules.lookback_days)
        eligible = [d for d in clean if lo <= d < day and (rules.baseline_start is None or d >= rules.baseline_start)]
        return eligible[-rules.baseline_days :]

    return choose


def _pivot(counts: pd.DataFrame, column: str) -> dict[date, dict[str, float]]:
    out: dict[date, dict[str, float]] = {}
    for row in counts.itertuples(index=False):
        out.setdefault(row.d, {})[row.channel] = out.get(row.d, {}).get(row.channel, 0.0) + float(getattr(row, column))
    return out


def _pool(per_day: dict[date, dict[str, float]], days) -> dict[str, float]:
    pooled: dict[str, float] = {}
    for d in days:
        for k, v in per_day.get(d, {}).items():
            pooled[k] = pooled.get(k, 0.0) + v
    return pooled


def _days_text(days) -> str:
    """Baseline days as ranges of consecutive dates: '2025-02-23..2025-02-27, 2025-03-02'."""
    return date_runs_text(days, joiner="..", none="no days")


def _direct_share(mix: dict[str, float], direct: set[str]) -> float | None:
    total = sum(mix.values())
    return sum(v for k, v in mix.items() if k in direct) / total if total else None


def mix_drift(
    counts: pd.DataFrame,
    run_date: date,
    rules: MixRules,
    *,
    amount: str = "value",
    test_counts: str | None = None,
    min_total: float = 1,
    direct_share: bool = False,
) -> dict[date, MixDay]:
    """Score every day's channel mix against its baseline (walking days in order, see stats.walk_clean).

    ``counts``: d, channel and the ``amount`` column (shares come from it: PSI) and optionally a
    ``test_counts`` column of event counts for the chi-square test (sessions: the same column;
    revenue: orders, since a test on currency amounts would be meaningless).

    ``direct_share=True`` (the session mix, see ``session_mix``) also scores the Direct/Unassigned
    share against the *same* baseline, and a day where either test fired stays out of every later
    baseline: the drift and the Direct share monitors share one definition of a flagged day.
    """
    amounts = _pivot(counts, amount)
    tests = _pivot(counts, test_counts or amount)
    days = sorted(d for d in amounts if d <= run_date)
    direct = set(rules.direct_channels)

    def evaluate(day: date, base: list[date]) -> MixDay:
        total = float(sum(tests.get(day, {}).values()))
        share = _direct_share(amounts[day], direct) if direct_share else None
        if len(base) < rules.min_baseline_days or total < min_total:
            return MixDay(day, total, tuple(base), direct_share=share)
        value = stats.psi(amounts[day], _pool(amounts, base), rules.psi_epsilon)
        chi2, p, dof = stats.chi_square(tests.get(day, {}), _pool(tests, base))
        fired = value >= rules.psi_threshold and p < rules.p_value_threshold
        base_share = _direct_share(_pool(amounts, base), direct) if direct_share else None
        jumped = share is not None and base_share is not None and share - base_share >= rules.direct_share_jump
        return MixDay(day, total, tuple(base), value, chi2, p, dof, fired, True, share, base_share, jumped)

    return stats.walk_clean(days, evaluate, _mix_baseline(rules), lambda m: m.any_flagged)


def session_mix(counts: pd.DataFrame, run_date: date, rules: MixRules) -> dict[date, MixDay]:
    """The session channel mix, day by day: drift and Direct/Unassigned share against one baseline.

    ``mix.channel_share_drift`` and ``mix.direct_share_jump`` both read this walk, so they always
    compare the day with the same baseline days, and a day either of them flagged is left out of
    both monitors' later baselines.
    """
    return mix_drift(
        counts, run_date, rules, amount="value", test_counts="value", min_total=rules.min_sessions, direct_share=True
    )


def mix_table(counts: pd.DataFrame, mix: MixDay, amount: str = "value") -> pd.DataFrame:
    """Channel shares on the day vs the baseline (for the report)."""
    per_day = _pivot(counts, amount)
    day = stats.shares(per_day.get(mix.day, {}))
    base = stats.shares(_pool(per_day, mix.baseline_days))
    channels = sorted(set(day) | set(base))
    df = pd.DataFrame(
        {
            "channel": channels,
            "day_share": [day.get(c, 0.0) for c in channels],
            "baseline_share": [base.get(c, 0.0) for c in channels],
        }
    )
    df["change"] = df["day_share"] - df["baseline_share"]
    return df.sort_values("change", key=abs, ascending=False, ignore_index=True)


def check_mix(
    counts: pd.DataFrame, run_date: date, rules: MixRules, *, what: str
) -> tuple[list[Finding], MixDay | None]:
    """Channel-share drift of sessions (``what='sessions'``) or attributed revenue (``'revenue'``)."""
    day = run_date.isoformat()
    if what == "sessions":
        finding_id, min_total, label = "mix.channel_share_drift", rules.min_sessions, "sessions"
        walked = session_mix(counts, run_date, rules)
    else:
        finding_id, min_total = "mix.revenue_share_drift", rules.min_orders
        label = f"{rules.attribution_model} attributed revenue"
        walked = mix_drift(counts, run_date, rules, test_counts="orders", min_total=min_total)
    mix = walked.get(run_date)
    if mix is None:
        return [], None
    if not mix.enough:
        if len(mix.baseline_days) < rules.min_baseline_days:
            why = (
                f"only {len(mix.baseline_days)} unflagged baseline day(s) in the last {rules.lookback_days} "
                f"(need {rules.min_baseline_days})"
            )
        else:
            why = f"only {mix.total:g} {'sessions' if what == 'sessions' else 'orders'} on the day (need {min_total})"
        return [
            Finding(
                "mix.insufficient_history",
                "info",
                f"{label} mix not judged on {day}: {why}",
                metric=f"{what}_mix",
                dates=[day],
            )
        ], mix
    if not mix.flagged:
        return [], mix
    table = mix_table(counts, mix)
    movers = ", ".join(f"{r.channel} {r.baseline_share:.1%}->{r.day_share:.1%}" for r in table.head(3).itertuples())
    severity = rules.severity
    if rules.psi_error_threshold is not None and mix.psi >= rules.psi_error_threshold:
        severity = "error"
    return [
        Finding(
            finding_id,
            severity,
            f"{label} channel mix on {day} drifted from the {len(mix.baseline_days)}-day baseline "
            f"({_days_text(mix.baseline_days)}; PSI {mix.psi:.3f}, chi-square p {mix.p_value:.2g}); "
            f"largest moves: {movers}",
            metric=f"{what}_channel_psi",
            value=mix.psi,
            band=(0.0, rules.psi_threshold),
            dates=[day],
            details={
                "p_value": mix.p_value,
                "chi2": mix.chi2,
                "dof": mix.dof,
                "baseline_days": [d.isoformat() for d in mix.baseline_days],
            },
        )
    ], mix


def direct_share_days(counts: pd.DataFrame, run_date: date, rules: MixRules) -> dict[date, dict]:
    """Direct/Unassigned share of sessions per day vs the share over its baseline days.

    The baseline days are the session mix's (``session_mix``): the same as ``mix.channel_share_drift``'s.
    """
    out = {}
    for d, mix in session_mix(counts, run_date, rules).items():
        row = {
            "flagged": mix.direct_jump,
            "enough": mix.enough,
            "share": mix.direct_share,
            "baseline": list(mix.baseline_days),
        }
        if mix.enough:
            row["baseline_share"] = mix.baseline_direct_share
        out[d] = row
    return out


def check_direct_share(counts: pd.DataFrame, run_date: date, rules: MixRules) -> list[Finding]:
    """A jump in the Direct/Unassigned share: the signature of lost referrer / campaign tracking."""
    result = direct_share_days(counts, run_date, rules).get(run_date)
    if not result or not result["flagged"]:
        return []
    day = run_date.isoformat()
    names = "/".join(rules.direct_channels)
    jump = result["share"] - result["baseline_share"]
    base = result["baseline"]
    return [
        Finding(
            "mix.direct_share_jump",
            rules.direct_share_severity,
            f"{names} share of sessions on {day} is {result['share']:.1%} vs {result['baseline_share']:.1%} "
            f"over the {len(base)}-day session-mix baseline ({_days_text(base)}): +{jump * 100:.1f} points; "
            f"referrer or campaign tracking may be lost",
            metric="direct_share",
            value=result["share"],
            band=(None, result["baseline_share"] + rules.direct_share_jump),
            dates=[day],
            details={
                "baseline_share": result["baseline_share"],
                "jump": jump,
                "baseline_days": [d.isoformat() for d in base],
            },
        )
    ]


# --- trends ---------------------------------------------------------------------------------------

# A day's value varies by sampling alone: counts at least like a Poisson variable, shares like a
# binomial one over their denominator. A baseline of a few quiet days can have a smaller spread than
# that, and would then flag ordinary noise (11 orders against 21.8 expected is z -3.2 over five
# days' sd, and -2.3 against the Poisson sd of 4.7).
_COUNTS = ("sessions", "orders", "rows_fct_sessions", "rows_fct_orders", "rows_fct_attribution")
_SHARES = {
    "conversion_rate": "sessions",
    "returning_visitor_share": "sessions",
    "bot_share": "events",
    "client_id_null_rate": "events",
    "untracked_order_share": "orders",
    "untracked_revenue_share": "orders",
}


def poisson_sd(_day: date, expected: float) -> float:
    return math.sqrt(max(expected, 0.0))


def sampling_noise(metric: str, metrics: pd.DataFrame):
    """``sd_floor(day, expected)`` for ``metric`` (see above), or None when it has no sampling model.

    Counts: sqrt(expected). Shares: sqrt(p(1-p)/n), n the day's denominator. Revenue, a sum over a
    Poisson number of orders: sqrt(orders * E[x^2]) with x an order's revenue; AOV, a mean of the
    day's orders: sqrt(Var(x) / the day's orders). The order-value moments and the mean orders come
    from the days before the run date (order values are heavy-tailed: a few $4k orders make a
    $20k day a $40k one).
    """
    if metric in _COUNTS:
        return poisson_sd
    if metric in _SHARES and _SHARES[metric] in metrics:
        n = metrics[_SHARES[metric]]

        def share_sd(day: date, expected: float) -> float:
            size = n.get(day)
            p = min(max(expected, 0.0), 1.0)
            return math.sqrt(p * (1 - p) / size) if size and size > 0 and not pd.isna(size) else 0.0

        return share_sd
    if metric in ("revenue", "aov") and {"orders", "revenue", "revenue_squares"} <= set(metrics.columns):
        history = metrics.iloc[:-1][["orders", "revenue", "revenue_squares"]].dropna()
        n = float(history["orders"].sum())
        if n <= 0:
            return None
        mean_orders, mean_x = float(history["orders"].mean()), float(history["revenue"].sum()) / n
        mean_x2 = float(history["revenue_squares"].sum()) / n
        if metric == "revenue":
            return lambda _day, _expected: math.sqrt(mean_orders * mean_x2)
        orders = metrics["orders"]
        variance = max(mean_x2 - mean_x**2, 0.0)
        return lambda day, _expected: (
            math.sqrt(variance / orders[day]) if orders.get(day, 0) and orders[day] > 0 else 0.0
        )
    return None


def trend_finding_id(metric: str) -> str:
    """Row-count metrics belong to completeness; the rest are trend.<metric>."""
    return "completeness.row_count" if metric.startswith("rows_") else f"trend.{metric}"


def check_trends(metrics: pd.DataFrame, run_date: date, rules: TrendRules) -> tuple[list[Finding], pd.DataFrame]:
    """Z-score every enabled metric's run-date value against its trailing, flag-excluding window.

    Returns the findings and a long frame of every scored day (metric, date, value, expected, low,
    high, z, flagged, method, ...) for the report's charts.
    """
    out: list[Finding] = []
    rows = []
    insufficient, unavailable = [], []
    day = run_date.isoformat()
    for metric, mr in rules.metrics.items():
        if not mr.enabled:
            continue
        series = metrics[metric] if metric in metrics else pd.Series(dtype="float64")
        series = series[[d for d in series.index if d >= run_date - timedelta(days=rules.window_days * 2)]]
        error_z, error_ratio = rules.error_levels(mr)
        points = stats.trend_series(
            series,
            window_days=rules.window_days,
            min_history=rules.min_history_days,
            min_same_weekday=rules.min_same_weekday,
            z_threshold=rules.z_threshold,
            min_abs_change=mr.min_abs_change,
            direction=mr.direction,
            baseline_start=rules.baseline_start,
            error_z=error_z,
            error_ratio=error_ratio,
            sd_floor=sampling_noise(metric, metrics),
        )
        # Every watched metric is a count, amount or share: a band below 0 only confuses charts.
        points = [replace(p, low=max(p.low, 0.0)) if p.low is not None else p for p in points]
        rows += [{"metric": metric, **asdict(p)} for p in points]
        point = next((p for p in points if p.date == run_date), None)
        if point is None:
            unavailable.append(metric)
            continue
        if point.expected is None:
            insufficient.append(metric)
            continue
        if not point.flagged:
            continue
        out.append(
            _trend_finding(
                trend_finding_id(metric), metric, point, mr.severity or rules.severity, (error_z, error_ratio)
            )
        )
    if insufficient:
        out.append(
            Finding(
                "trend.insufficient_history",
                "info",
                f"not enough history to judge {', '.join(insufficient)} on {day} (need "
                f"{rules.min_history_days} usable days in the last {rules.window_days})",
                metric=",".join(insufficient),
                dates=[day],
            )
        )
    if unavailable:
        out.append(
            Finding(
                "trend.metric_unavailable",
                "info",
                f"no value on {day} for {', '.join(unavailable)} (table or stg_events partition absent)",
                metric=",".join(unavailable),
                dates=[day],
            )
        )
    columns = ["metric", *TREND_POINT_FIELDS]
    return out, pd.DataFrame(rows, columns=columns)


TREND_POINT_FIELDS = [f for f in stats.TrendPoint.__dataclass_fields__]


def _trend_finding(
    fid: str,
    metric: str,
    point: stats.TrendPoint,
    severity: str,
    error_levels: tuple[float | None, float | None],
    what: str | None = None,
) -> Finding:
    """The finding of a flagged trend point: an ERROR when the move is extreme, else ``severity``."""
    day = point.date.isoformat()
    wow = "" if point.wow_change is None else f"; {point.wow_change:+.1%} vs the same weekday last week"
    how = "same-weekday baseline" if point.method == "weekday" else "trailing baseline"
    error_z, error_ratio = error_levels
    extreme = ""
    if point.extreme:
        severity = "error"
        levels = " and ".join(
            x
            for x in (
                f"|z| >= {_fmt(error_z)}" if error_z else "",
                f"x{_fmt(error_ratio)} or 1/{_fmt(error_ratio)} of expected" if error_ratio else "",
            )
            if x
        )
        extreme = f"; beyond the error level ({levels})"
    return Finding(
        fid,
        severity,
        f"{what or metric} on {day} is {_fmt(point.value)} vs expected {_fmt(point.expected)} "
        f"(z {_fmt(point.z)}, {how} of {point.n_baseline} days){wow}{extreme}",
        metric=metric,
        value=point.value,
        band=(point.low, point.high),
        dates=[day],
        details={
            "expected": point.expected,
            "z": point.z,
            "sd": point.sd,
            "method": point.method,
            "n_baseline": point.n_baseline,
            "wow_change": point.wow_change,
            "extreme": point.extreme,
            "error_z": error_z,
            "error_ratio": error_ratio,
        },
    )


# --- segments: each channel's sessions and each click id's landings -------------------------------


def check_segments(
    counts: pd.DataFrame, run_date: date, rules: SegmentRules, trend: TrendRules, kind: str
) -> list[Finding]:
    """A trend per segment (a channel's non-bot sessions, or a click id's landings), so one channel
    that halves on a steady total fires on its own, named.

    ``counts``: long frame d, channel, value (channel = the segment). Watched: segments with at
    least ``rules.min_share`` of the sessions of the run date's trailing window. A move is flagged
    at a lower z than the headline trends but only from a relative size on (``rules.z_threshold``
    and ``rules.min_ratio``): a channel's history is noisier than the total's and a short one
    cannot reach z 3, while a channel losing a third or more of its sessions matters. It is a WARN.
    For channels an extreme fall (the trend's error levels) is an ERROR unless the other
    channels gained at least ``error_min_net_loss`` of its shortfall above their own baselines: a
    channel emptied into another (lost referrers turn Organic Search into Direct) is a change of
    mix, which ``mix.*`` reports, while sessions that vanished are lost data. Rises only warn (a
    campaign, or sessions moved in from another channel; bot floods are ``trend.bot_share``'s), and
    so do click-id landings: sessions that lose their click id still land, in another channel.
    """
    if counts.empty:
        return []
    wide = counts.pivot_table(index="d", columns="channel", values="value", aggfunc="sum").sort_index()
    wide = wide.loc[[d for d in wide.index if d <= run_date]].fillna(0.0)
    window = [d for d in wide.index if run_date - timedelta(days=trend.window_days) <= d < run_date]
    total_window = float(wide.loc[window].to_numpy().sum()) if window else 0.0
    if total_window <= 0 or run_date not in wide.index:
        return []
    error_z, error_ratio = (trend.error_z, trend.error_ratio) if kind == "channel" else (None, None)
    points = {}
    for segment in wide.columns:
        series = stats.trend_series(
            wide[segment],
            window_days=trend.window_days,
            min_history=trend.min_history_days,
            min_same_weekday=trend.min_same_weekday,
            z_threshold=rules.z_threshold,
            min_abs_change=rules.min_abs_change,
            min_ratio=rules.min_ratio,
            baseline_start=trend.baseline_start,
            error_z=error_z,
            error_ratio=error_ratio,
            sd_floor=poisson_sd,
        )
        points[segment] = next((p for p in series if p.date == run_date), None)
    gains = {s: max(0.0, p.value - p.expected) for s, p in points.items() if p is not None and p.expected is not None}
    referrer_loss = _referrer_loss(counts, window, run_date) if kind == "channel" else None
    out = []
    for segment, point in sorted(points.items()):
        watched = float(wide.loc[window, segment].sum()) / total_window >= rules.min_share
        if point is None or not point.flagged or not watched:
            continue
        shortfall = (point.expected or 0.0) - point.value
        moved = sum(g for s, g in gains.items() if s != segment)
        explained, referrers_explain = "", False
        if kind == "channel" and shortfall > 0:
            explained = f"; other channels gained {moved:,.0f} sessions above their baselines"
            dependence = _referrer_dependence(counts, window, segment)
            referrers_explain = (
                referrer_loss is not None and dependence >= 0.5 and referrer_loss <= 1 / (error_ratio or 2.0)
            )
            if referrers_explain:
                explained += (
                    f"; lost referrers explain it: {dependence:.0%} of its baseline sessions were "
                    f"recognised by their referrer alone, and the day's share of sessions with a "
                    f"referrer is {referrer_loss:.0%} of its baseline's"
                )
        if point.extreme and (shortfall <= 0 or moved >= rules.error_min_net_loss * shortfall or referrers_explain):
            point = replace(point, extreme=False)  # a rise, or sessions moved or relabelled: not lost
        label = f"{segment} sessions" if kind == "channel" else f"{segment} landings"
        finding = _trend_finding(f"segment.{kind}", segment, point, trend.severity, (error_z, error_ratio), label)
        finding.message += explained
        out.append(finding)
    return out


def _referrer_dependence(counts: pd.DataFrame, window: list[date], segment: str) -> float:
    """Share of a channel's sessions in ``window`` recognised by their referrer alone."""
    rows = counts[(counts.channel == segment) & counts.d.isin(window)]
    total = float(rows["value"].sum())
    return float(rows["by_referrer"].sum()) / total if total > 0 and "by_referrer" in rows else 0.0


def _referrer_loss(counts: pd.DataFrame, window: list[date], run_date: date) -> float | None:
    """The run date's share of sessions recognised by referrer, as a multiple of the window's share."""
    if "by_referrer" not in counts:
        return None

    def share(rows: pd.DataFrame) -> float | None:
        total = float(rows["value"].sum())
        return float(rows["by_referrer"].sum()) / total if total > 0 else None

    base, day = share(counts[counts.d.isin(window)]), share(counts[counts.d == run_date])
    return None if not base or day is None else day / base
