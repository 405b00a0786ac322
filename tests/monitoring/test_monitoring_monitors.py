"""puffy.monitoring.monitors: each monitor fires on a hand-built problem and stays quiet on normal data."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from puffy.findings import MONITORING_JSON, Finding
from puffy.monitoring import monitors as mon
from puffy.monitoring.rules import FreshnessRules, FunnelRules, MixRules, RevenueRules, TrendMetric, TrendRules

DAY = date(2025, 3, 8)
NOW = datetime(2025, 3, 9, 6, 0, tzinfo=UTC)
TABLES = ["fct_sessions", "fct_orders", "fct_attribution"]


def ids(findings) -> list[str]:
    return sorted(f.id for f in findings)


def days_back(n: int, end: date = DAY) -> list[date]:
    return [end - timedelta(days=i) for i in range(n, -1, -1)]


# --- freshness & completeness ---------------------------------------------------------------------


def fresh(mtime=NOW - timedelta(hours=2)):
    return {t: mtime for t in TABLES}


def test_freshness_quiet_when_everything_is_there():
    available = {t: days_back(20) for t in TABLES}
    assert mon.check_partitions(DAY, NOW, fresh(), available, FreshnessRules(), {t: 10 for t in TABLES}) == []


def test_missing_run_date_partition_is_an_error():
    mtimes = fresh() | {"fct_attribution": None}
    found = mon.check_partitions(DAY, NOW, mtimes, {t: days_back(3) for t in TABLES}, FreshnessRules())
    assert [(f.id, f.severity, f.metric) for f in found] == [
        ("freshness.partition_missing", "error", "fct_attribution")
    ]


def test_partition_older_than_the_sla_is_stale():
    mtimes = fresh() | {"fct_orders": NOW - timedelta(hours=50)}
    found = mon.check_partitions(DAY, NOW, mtimes, {t: days_back(3) for t in TABLES}, FreshnessRules(sla_hours=36))
    assert ids(found) == ["freshness.partition_stale"]
    assert found[0].value == pytest.approx(50) and found[0].band == (0.0, 36)


def test_missing_days_are_listed_but_the_start_of_history_is_not_a_gap():
    have = [d for d in days_back(10) if d not in (DAY - timedelta(days=3), DAY - timedelta(days=4))]
    found = mon.check_partitions(
        DAY,
        NOW,
        fresh(),
        {"fct_sessions": have, "fct_orders": days_back(10), "fct_attribution": days_back(10)},
        FreshnessRules(),
    )
    assert ids(found) == ["freshness.missing_days"]
    assert found[0].dates == ["2025-03-04", "2025-03-05"] and found[0].metric == "fct_sessions"
    # first run ever: nothing before the run date is not a gap
    assert mon.check_partitions(DAY, NOW, fresh(), {t: [DAY] for t in TABLES}, FreshnessRules()) == []


def test_gap_window_limits_how_far_back_gaps_count():
    have = [DAY - timedelta(days=30)] + days_back(5)
    found = mon.check_partitions(
        DAY, NOW, fresh(), {t: have for t in TABLES}, FreshnessRules(tables=["fct_sessions"], gap_window_days=7)
    )
    assert found[0].dates == ["2025-03-01", "2025-03-02"]


def test_empty_sessions_partition_is_an_error():
    found = mon.check_partitions(
        DAY,
        NOW,
        fresh(),
        {t: [DAY] for t in TABLES},
        FreshnessRules(),
        {"fct_sessions": 0, "fct_orders": 0, "fct_attribution": 0},
    )
    assert [(f.id, f.metric) for f in found] == [("completeness.empty_partition", "fct_sessions")]


# --- revenue integrity ----------------------------------------------------------------------------


def orders(n=5, revenue=100.0, **cols) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "order_key": [f"ORD-{i}" for i in range(n)],
            "transaction_id": [f"ORD-{i}" for i in range(n)],
            "revenue": [revenue] * n,
            "session_id": [f"s{i}" for i in range(n)],
            "is_transaction_id_collision": [False] * n,
            "has_missing_item_prices": [False] * n,
        }
    )
    for k, v in cols.items():
        df[k] = v
    return df


NO_HISTORY = pd.DataFrame(columns=["d", "order_key", "transaction_id"])


def test_unique_orders_are_quiet():
    assert mon.check_duplicates(orders(), NO_HISTORY, DAY, RevenueRules()) == []


def test_duplicate_order_key_on_the_day_is_an_error():
    o = orders()
    o.loc[4, ["order_key", "transaction_id"]] = ["ORD-0", "ORD-0"]
    found = mon.check_duplicates(o, NO_HISTORY, DAY, RevenueRules())
    assert ("revenue.duplicate_order_key", "error") in [(f.id, f.severity) for f in found]
    assert found[0].details["examples"] == ["ORD-0"]


def test_order_key_already_used_on_an_earlier_day_is_a_duplicate():
    history = pd.DataFrame({"d": [DAY - timedelta(days=2)], "order_key": ["ORD-3"], "transaction_id": ["X"]})
    assert ids(mon.check_duplicates(orders(), history, DAY, RevenueRules())) == ["revenue.duplicate_order_key"]


def test_flagged_transaction_id_collision_is_a_warning():
    o = orders(collision=False)
    o.loc[1, "order_key"] = "ORD-0#2"
    o.loc[1, "transaction_id"] = "ORD-0"
    o.loc[[0, 1], "is_transaction_id_collision"] = True
    found = mon.check_duplicates(o.drop(columns="collision"), NO_HISTORY, DAY, RevenueRules())
    assert [(f.id, f.severity, f.value) for f in found] == [("revenue.transaction_id_collision", "warn", 1)]


def test_unflagged_reused_transaction_id_is_an_error():
    o = orders()
    o.loc[1, "transaction_id"] = "ORD-0"
    found = mon.check_duplicates(o, NO_HISTORY, DAY, RevenueRules())
    assert [(f.id, f.severity) for f in found] == [("revenue.duplicate_transaction_id", "error")]


def rejects(zero: int, other: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order_key": [None] * (zero + other),
            "transaction_id": ["t"] * (zero + other),
            "reason": ["zero_revenue_empty_items"] * zero + ["replay"] * other,
            "revenue": [0.0] * zero + [50.0] * other,
        }
    )


def test_revenue_values_quiet_on_normal_orders():
    assert mon.check_revenue_values(orders(), rejects(0), None, DAY, RevenueRules()) == []


def test_negative_revenue_is_an_error():
    o = orders()
    o.loc[2, "revenue"] = -5.0
    attr = pd.DataFrame(
        {"model": ["last_click"], "orders": [5], "attributed_revenue": [495.0], "min_attributed_revenue": [-5.0]}
    )
    found = mon.check_revenue_values(o, None, attr, DAY, RevenueRules())
    assert [(f.id, f.severity, f.value) for f in found] == [("revenue.negative_revenue", "error", 2)]


@pytest.mark.parametrize(
    "n_orders, zero, fires",
    [
        (18, 2, True),  # 2 of 20 = 10% > 5%, and 2 >= min_count
        (19, 1, False),  # 5% but only one: a stray zero order pages nobody
        (98, 2, False),  # 2 of 100 = 2% <= 5%
    ],
)
def test_zero_revenue_spike(n_orders, zero, fires):
    found = mon.check_revenue_values(orders(n_orders), rejects(zero, other=0), None, DAY, RevenueRules())
    assert (ids(found) == ["revenue.zero_revenue_orders"]) is fires
    if fires:
        assert found[0].value == pytest.approx(zero / (n_orders + zero)) and found[0].band == (0.0, 0.05)


def test_missing_item_prices():
    o = orders(4, has_missing_item_prices=[True, True, True, False])
    assert ids(mon.check_revenue_values(o, None, None, DAY, RevenueRules())) == ["revenue.missing_item_prices"]


def totals(**by_model) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model": list(by_model),
            "orders": [5] * len(by_model),
            "attributed_revenue": list(by_model.values()),
            "min_attributed_revenue": [0.0] * len(by_model),
        }
    )


def test_reconciliation_quiet_within_tolerance():
    found = mon.check_reconciliation(
        500.0, 0.0, 500.004, totals(last_click=500.0, markov=499.995), 5, DAY, RevenueRules()
    )
    assert found == []


def test_raw_revenue_must_equal_orders_plus_rejects():
    found = mon.check_reconciliation(500.0, 50.0, 600.0, totals(last_click=500.0), 5, DAY, RevenueRules())
    assert [(f.id, f.severity, f.value) for f in found] == [("revenue.reconciliation_raw", "error", 50.0)]


def test_each_attribution_model_is_reconciled_separately():
    found = mon.check_reconciliation(500.0, 0.0, 500.0, totals(last_click=500.0, markov=480.0), 5, DAY, RevenueRules())
    assert [(f.id, f.metric, f.value) for f in found] == [
        ("revenue.reconciliation_attribution", "attributed_revenue[markov]", -20.0)
    ]


def test_a_required_model_that_is_absent_fails_reconciliation():
    rules = RevenueRules(attribution_models=["last_click", "first_click"])
    found = mon.check_reconciliation(500.0, 0.0, 500.0, totals(last_click=500.0), 5, DAY, rules)
    assert [f.metric for f in found] == ["attributed_revenue[first_click]"]


def test_reconciliation_without_staged_events_is_skipped_with_info():
    found = mon.check_reconciliation(500.0, 0.0, None, totals(last_click=500.0), 5, DAY, RevenueRules())
    assert [(f.id, f.severity) for f in found] == [("revenue.reconciliation_skipped", "info")]


def test_transform_reconciliation_rows_that_are_not_ok_surface():
    report = pd.DataFrame(
        {
            "check": ["raw_rows", "item_prices_vs_revenue", "revenue_orders"],
            "left": [10.0, 5.0, 100.0],
            "right": [10.0, 4.0, 90.0],
            "difference": [0.0, -1.0, -10.0],
            "status": ["ok", "warn", "error"],
        }
    )
    found = mon.check_transform_reconciliation(report, DAY)
    assert [(f.id, f.severity, f.metric) for f in found] == [
        ("revenue.transform_reconciliation", "warn", "item_prices_vs_revenue"),
        ("revenue.transform_reconciliation", "error", "revenue_orders"),
    ]


# --- funnel ---------------------------------------------------------------------------------------

GOOD_FUNNEL = {"sessions": 1000, "viewed_product": 600, "added_to_cart": 100, "started_checkout": 40, "purchased": 10}


def test_healthy_funnel_is_quiet():
    assert mon.check_funnel(GOOD_FUNNEL, 10, 0, DAY, FunnelRules()) == []


def test_non_monotone_funnel_is_an_error():
    counts = GOOD_FUNNEL | {"purchased": 45}
    found = mon.check_funnel(counts, 45, 0, DAY, FunnelRules(bands={}))
    assert [(f.id, f.severity, f.metric, f.value) for f in found] == [
        ("funnel.non_monotone", "error", "purchased>started_checkout", 5)
    ]


def test_stage_rate_outside_its_band():
    counts = GOOD_FUNNEL | {"added_to_cart": 5, "started_checkout": 4, "purchased": 2}
    found = mon.check_funnel(counts, 2, 0, DAY, FunnelRules())
    assert [(f.id, f.metric) for f in found] == [("funnel.conversion_rate_out_of_band", "add_to_cart_rate")]
    assert found[0].value == pytest.approx(5 / 600) and found[0].band == (0.01, 0.60)


def test_rates_are_not_judged_on_tiny_days():
    counts = {"sessions": 30, "viewed_product": 1, "added_to_cart": 1, "started_checkout": 1, "purchased": 1}
    assert mon.check_funnel(counts, 1, 0, DAY, FunnelRules()) == []


def test_orders_without_session_share():
    found = mon.check_funnel(GOOD_FUNNEL, 10, 2, DAY, FunnelRules())
    assert [(f.id, f.value) for f in found] == [("funnel.orders_without_session", 0.2)]
    assert mon.check_funnel(GOOD_FUNNEL, 40, 2, DAY, FunnelRules()) == []  # 5% is allowed


# --- marketing mix --------------------------------------------------------------------------------

BASE_MIX = {"Organic Search": 300, "Paid Search": 250, "Direct": 200, "Paid Social": 150, "Email": 100}


def mix_counts(per_day: dict[date, dict[str, float]]) -> pd.DataFrame:
    rows = [
        {"d": d, "channel": c, "value": float(v), "orders": float(v)}
        for d, mix in per_day.items()
        for c, v in mix.items()
    ]
    return pd.DataFrame(rows)


def history_with(day_mixes: dict[int, dict[str, float]], n_days: int = 8) -> pd.DataFrame:
    """``n_days`` days ending on DAY with the base mix (tiny day-to-day noise), some days replaced."""
    per_day = {}
    for i, d in enumerate(days_back(n_days - 1)):
        noise = {c: v + ((i + k) % 3 - 1) * 2 for k, (c, v) in enumerate(BASE_MIX.items())}
        per_day[d] = day_mixes.get(i, noise)
    return mix_counts(per_day)


LOST_REFERRER = {"Organic Search": 0, "Paid Search": 250, "Direct": 500, "Paid Social": 150, "Email": 100}


def test_stable_mix_is_quiet():
    found, day = mon.check_mix(history_with({}), DAY, MixRules(), what="sessions")
    assert found == [] and day.enough and day.psi < 0.01 and day.p_value > 0.5
    assert mon.check_direct_share(history_with({}), DAY, MixRules()) == []


def test_lost_referrer_drifts_the_mix_and_jumps_direct():
    counts = history_with({7: LOST_REFERRER})
    found, day = mon.check_mix(counts, DAY, MixRules(), what="sessions")
    assert [(f.id, f.severity) for f in found] == [("mix.channel_share_drift", "warn")]
    assert found[0].value == pytest.approx(day.psi) and day.psi > 1 and day.p_value < 1e-10
    assert "Direct" in found[0].message and len(found[0].details["baseline_days"]) == 7
    jump = mon.check_direct_share(counts, DAY, MixRules())
    assert [f.id for f in jump] == ["mix.direct_share_jump"]
    # Direct share 500/1000 = 50% vs ~200/1000 = 20% over the baseline: +30 points
    assert jump[0].value == pytest.approx(0.5) and jump[0].details["jump"] == pytest.approx(0.3, abs=0.01)


def test_mix_baseline_skips_days_already_flagged():
    # the referrer is lost on the last 3 days: each is still judged against the pre-loss days
    counts = history_with({9: LOST_REFERRER, 10: LOST_REFERRER, 11: LOST_REFERRER}, n_days=12)
    found, day = mon.check_mix(counts, DAY, MixRules(), what="sessions")
    assert [f.id for f in found] == ["mix.channel_share_drift"]
    assert DAY - timedelta(days=1) not in day.baseline_days and DAY - timedelta(days=2) not in day.baseline_days
    assert len(day.baseline_days) == 7
    assert [f.id for f in mon.check_direct_share(counts, DAY, MixRules())] == ["mix.direct_share_jump"]


def test_big_psi_on_a_tiny_sample_is_not_significant():
    # 12 sessions on the day, shares far from the baseline's, but a chi-square cannot tell it from noise
    tiny = {"Organic Search": 2, "Paid Search": 5, "Direct": 3, "Paid Social": 1, "Email": 1}
    found, day = mon.check_mix(history_with({7: tiny}), DAY, MixRules(min_sessions=10), what="sessions")
    assert found == [] and day.psi >= 0.1 and day.p_value >= 0.001


def test_mix_needs_a_baseline():
    found, day = mon.check_mix(history_with({}, n_days=3), DAY, MixRules(), what="sessions")
    assert [(f.id, f.severity) for f in found] == [("mix.insufficient_history", "info")]


def test_revenue_mix_tests_order_counts_not_currency():
    per_day = {d: {"Paid Search": 10_000.0, "Email": 2_000.0} for d in days_back(7)}
    per_day[DAY] = {"Paid Search": 2_000.0, "Email": 10_000.0}
    counts = mix_counts(per_day)
    counts["orders"] = 6.0  # revenue shares flipped, but on 12 orders a day
    found, day = mon.check_mix(counts, DAY, MixRules(min_orders=10), what="revenue")
    assert found == [] and day.psi > 1 and day.p_value == pytest.approx(1.0)
    counts["orders"] = counts["value"] / 10  # same shift on 1,200 orders is real
    found, _ = mon.check_mix(counts, DAY, MixRules(min_orders=10), what="revenue")
    assert [f.id for f in found] == ["mix.revenue_share_drift"]


# --- trends ---------------------------------------------------------------------------------------


def metric_frame(n: int = 15, **last_values) -> pd.DataFrame:
    days = days_back(n - 1)
    wiggle = [(i % 3) - 1 for i in range(n)]
    df = pd.DataFrame(
        {
            "sessions": [1000.0 + 20 * w for w in wiggle],
            "client_id_null_rate": [0.01 + 0.001 * w for w in wiggle],
            "rows_fct_orders": [20.0 + w for w in wiggle],
        },
        index=pd.Index(days, name="date"),
    )
    for k, v in last_values.items():
        df.loc[DAY, k] = v
    return df


TREND_RULES = TrendRules(
    metrics={
        "sessions": TrendMetric(min_abs_change=100),
        "client_id_null_rate": TrendMetric(min_abs_change=0.02, direction="up"),
        "rows_fct_orders": TrendMetric(min_abs_change=5),
    }
)


def test_trends_quiet_on_normal_days():
    found, frame = mon.check_trends(metric_frame(), DAY, TREND_RULES)
    assert found == []
    assert set(frame["metric"]) == {"sessions", "client_id_null_rate", "rows_fct_orders"}


def test_trend_findings_carry_value_band_and_stable_ids():
    found, _ = mon.check_trends(metric_frame(client_id_null_rate=0.158, rows_fct_orders=2.0), DAY, TREND_RULES)
    assert ids(found) == ["completeness.row_count", "trend.client_id_null_rate"]
    null = next(f for f in found if f.id == "trend.client_id_null_rate")
    assert null.value == pytest.approx(0.158) and null.band[0] is None and null.band[1] < 0.158
    assert null.details["z"] > 3 and null.dates == ["2025-03-08"]


def test_trend_insufficient_history_is_one_info_finding():
    found, _ = mon.check_trends(metric_frame(n=3, sessions=5000.0), DAY, TREND_RULES)
    assert [(f.id, f.severity) for f in found] == [("trend.insufficient_history", "info")]
    assert found[0].metric == "sessions,client_id_null_rate,rows_fct_orders"


def test_trend_metric_without_a_value_is_reported_unavailable():
    df = metric_frame()
    df.loc[DAY, "client_id_null_rate"] = float("nan")
    found, _ = mon.check_trends(df, DAY, TREND_RULES)
    assert [(f.id, f.metric) for f in found] == [("trend.metric_unavailable", "client_id_null_rate")]


def test_per_metric_severity_overrides_the_default():
    rules = TREND_RULES.model_copy(update={"metrics": {"sessions": TrendMetric(min_abs_change=100, severity="error")}})
    found, _ = mon.check_trends(metric_frame(sessions=3000.0), DAY, rules)
    assert [(f.id, f.severity) for f in found] == [("trend.sessions", "error")]


def test_finding_serialises_to_plain_json_types():
    f = Finding(
        "trend.sessions",
        "warn",
        "m",
        metric="sessions",
        value=float("inf"),
        band=(float("nan"), 2.0),
        details={"z": float("-inf"), "n": 3},
    )
    out = f.to_dict(MONITORING_JSON)
    assert out["value"] is None and out["band"] == [None, 2.0]
    assert out["details"] == {"z": None, "n": 3}


# --- the session-mix monitors share one baseline ----------------------------------------------------
# 1,000 sessions a day over four channels; shares worked out by hand:
#   normal           Direct 30%, Paid Search 30%, Organic Search 20%, Referral 20%
#   referral spike   Direct 15%, Referral 35%: PSI vs normal = 0.15·ln 2 + 0.15·ln 1.75 = 0.188 (drift
#                    fires, p ~ 0) while the Direct share *falls*, so the Direct jump does not fire
#   direct creep     Direct 41%, Paid 27%, Organic 16%, Referral 16%: Direct +11 points (jump fires) but
#                    PSI = 0.11·ln(41/30) + 0.03·ln(30/27) + 2·0.04·ln(20/16) = 0.055 (no drift)
#   lost referrer    Direct 45%, Referral 5%: Direct +15 points and PSI 0.269 (both fire)

NORMAL = {"Direct": 300, "Paid Search": 300, "Organic Search": 200, "Referral": 200}
REFERRAL_SPIKE = {"Direct": 150, "Paid Search": 300, "Organic Search": 200, "Referral": 350}
DIRECT_CREEP = {"Direct": 410, "Paid Search": 270, "Organic Search": 160, "Referral": 160}
REFERRER_LOST = {"Direct": 450, "Paid Search": 300, "Organic Search": 200, "Referral": 50}


def eight_days(middle: dict[str, float]) -> pd.DataFrame:
    """03-01..03-04 normal, 03-05..03-07 ``middle``, the run date 03-08 lost referrer."""
    days = days_back(7)
    return mix_counts({d: NORMAL if i < 4 else middle if i < 7 else REFERRER_LOST for i, d in enumerate(days)})


NORMAL_DAYS = [d.isoformat() for d in days_back(7)[:4]]  # 2025-03-01 .. 2025-03-04


def test_direct_share_baseline_leaves_out_days_the_drift_monitor_flagged():
    # 03-05..03-07 drifted (flagged by mix.channel_share_drift): they must not enter the Direct share's
    # baseline either. Before the fix its baseline was 03-01..03-07, pooled Direct
    # (4·300 + 3·150) / 7,000 = 23.6%, against 30.0% for the drift monitor's 03-01..03-04.
    counts = eight_days(REFERRAL_SPIKE)
    drift, day = mon.check_mix(counts, DAY, MixRules(), what="sessions")
    jump = mon.check_direct_share(counts, DAY, MixRules())
    assert [f.id for f in drift] == ["mix.channel_share_drift"] and [f.id for f in jump] == ["mix.direct_share_jump"]
    assert drift[0].details["baseline_days"] == NORMAL_DAYS
    assert jump[0].details["baseline_days"] == NORMAL_DAYS
    assert jump[0].value == pytest.approx(0.45)
    assert jump[0].details["baseline_share"] == pytest.approx(0.30)  # 1,200 / 4,000
    assert jump[0].details["jump"] == pytest.approx(0.15)
    # the drift message's Direct baseline share is the same 30.0% (Unassigned is 0 here)
    table = mon.mix_table(counts, day).set_index("channel")
    assert table.loc["Direct", "baseline_share"] == pytest.approx(0.30)
    assert "Direct 30.0%->45.0%" in drift[0].message and "vs 30.0%" in jump[0].message
    # and both messages say which days they compared with
    for f in drift + jump:
        assert "2025-03-01..2025-03-04" in f.message, f.message


def test_drift_baseline_leaves_out_days_the_direct_share_monitor_flagged():
    # 03-05..03-07: Direct +11 points (mix.direct_share_jump) with a PSI of only 0.055 (no drift).
    # Before the fix they entered the drift baseline (7 days 03-01..03-07, Direct 34.7%).
    counts = eight_days(DIRECT_CREEP)
    per_day = mon.direct_share_days(counts, DAY, MixRules())
    assert [d.isoformat() for d, r in per_day.items() if r["flagged"]] == [
        "2025-03-05",
        "2025-03-06",
        "2025-03-07",
        "2025-03-08",
    ]
    walked = mon.mix_drift(counts, DAY, MixRules(), min_total=MixRules().min_sessions)
    assert not any(walked[d].flagged for d in days_back(3, DAY - timedelta(days=1)))  # 03-04..03-07: no drift
    _, day = mon.check_mix(counts, DAY, MixRules(), what="sessions")
    assert [d.isoformat() for d in day.baseline_days] == NORMAL_DAYS
    assert mon.mix_table(counts, day).set_index("channel").loc["Direct", "baseline_share"] == pytest.approx(0.30)
    assert per_day[DAY]["baseline"] == list(day.baseline_days)


def test_baseline_days_text_names_ranges_and_gaps():
    d = date(2025, 2, 23)
    days = [d, d + timedelta(days=1), d + timedelta(days=2), d + timedelta(days=5)]
    assert mon._days_text(days) == "2025-02-23..2025-02-25, 2025-02-28"
    assert mon._days_text([]) == "no days"


# --- error levels: monitoring stops what the gate let through -----------------------------------
# metric_frame's sessions cycle 980, 1,000, 1,020: expected 1,000, sample sd 20·sqrt(14/13 · 2/3) ≈ 16.9.


def test_an_extreme_fall_is_an_error_and_a_large_one_a_warning():
    # 400: z ≈ -35 and 0.4 of expected (beyond 1/2) → ERROR; 800: z ≈ -12 but 0.8 of expected → WARN.
    found, _ = mon.check_trends(metric_frame(sessions=400.0), DAY, TREND_RULES)
    assert [(f.id, f.severity) for f in found] == [("trend.sessions", "error")]
    assert "beyond the error level" in found[0].message and found[0].details["extreme"] is True
    found, _ = mon.check_trends(metric_frame(sessions=800.0), DAY, TREND_RULES)
    assert [(f.id, f.severity) for f in found] == [("trend.sessions", "warn")]


def test_a_day_without_orders_is_an_error_against_a_steady_baseline():
    frame = metric_frame()
    frame["orders"] = [20.0 + (i % 3) - 1 for i in range(len(frame))]
    frame.loc[DAY, "orders"] = 0.0
    rules = TrendRules(metrics={"orders": TrendMetric(min_abs_change=5)})
    found, _ = mon.check_trends(frame, DAY, rules)
    assert [(f.id, f.severity) for f in found] == [("trend.orders", "error")]


def test_error_levels_are_configurable_and_can_be_switched_off():
    off = TREND_RULES.model_copy(update={"metrics": {"sessions": TrendMetric(min_abs_change=100, error=False)}})
    assert [f.severity for f in mon.check_trends(metric_frame(sessions=400.0), DAY, off)[0]] == ["warn"]
    # 400 is 1/2.5 of expected: not beyond a ratio of 3, so not extreme.
    wide = TREND_RULES.model_copy(update={"error_ratio": 3.0})
    assert [f.severity for f in mon.check_trends(metric_frame(sessions=400.0), DAY, wide)[0]] == ["warn"]


def test_shipped_rules_never_stop_a_day_on_missing_client_ids():
    from puffy.monitoring.rules import MonitoringRules

    assert MonitoringRules().trend.error_levels(MonitoringRules().trend.metrics["client_id_null_rate"]) == (None, None)


# --- segments: one channel's sessions on their own ----------------------------------------------
# Eight baseline days of Paid Search 400 (±10), Organic Search 200 (±10, all of them recognised by
# their referrer), Direct 400 (±10); the run date changes one thing.


def segment_counts(last: dict[str, float], by_referrer_last: float = 200.0) -> pd.DataFrame:
    rows = []
    for i, d in enumerate(days_back(8)):
        w = (i % 3) - 1
        day = (
            last if d == DAY else {"Paid Search": 400 + 10 * w, "Organic Search": 200 + 10 * w, "Direct": 400 - 10 * w}
        )
        for channel, value in day.items():
            by_ref = (by_referrer_last if d == DAY else value) if channel == "Organic Search" else 0.0
            rows.append({"d": d, "channel": channel, "value": float(value), "by_referrer": float(by_ref)})
    return pd.DataFrame(rows)


def segments(counts, kind="channel"):
    from puffy.monitoring.rules import SegmentRules

    return mon.check_segments(counts, DAY, SegmentRules(), TrendRules(), kind)


def test_a_channel_that_loses_most_of_its_sessions_is_an_error_named():
    found = segments(segment_counts({"Paid Search": 150, "Organic Search": 200, "Direct": 400}))
    assert [(f.id, f.metric, f.severity) for f in found] == [("segment.channel", "Paid Search", "error")]
    assert found[0].message.startswith("Paid Search sessions on 2025-03-08 is 150.00")


def test_a_channel_that_halves_on_a_steady_total_warns():
    # Paid Search -45% (220 of 400): beyond 1/1.5 but not 1/2, so a WARN; nobody else moved.
    found = segments(segment_counts({"Paid Search": 220, "Organic Search": 200, "Direct": 400}))
    assert [(f.metric, f.severity) for f in found] == [("Paid Search", "warn")]


def test_sessions_that_moved_to_another_channel_are_a_warning_not_lost_data():
    # Direct 650 against its mean 401.25 (+248.75), Paid Search 400 against 398.75 (+1.25): 250 moved.
    found = segments(segment_counts({"Paid Search": 400, "Organic Search": 0, "Direct": 650}, by_referrer_last=0))
    assert {f.metric: f.severity for f in found} == {"Organic Search": "warn", "Direct": "warn"}
    organic = next(f for f in found if f.metric == "Organic Search")
    assert "other channels gained 250 sessions" in organic.message


def test_a_channel_emptied_by_lost_referrers_is_explained_not_an_error():
    # Organic Search (all of it recognised by referrer) is gone and so are the day's referrers;
    # the sessions are not seen elsewhere (they fell out with the referrer): explained, a WARN.
    found = segments(segment_counts({"Paid Search": 400, "Organic Search": 0, "Direct": 400}, by_referrer_last=0))
    assert [(f.metric, f.severity) for f in found] == [("Organic Search", "warn")]
    assert "lost referrers explain it" in found[0].message


def test_click_id_landings_only_warn():
    counts = segment_counts({"Paid Search": 100, "Organic Search": 200, "Direct": 400}).drop(columns="by_referrer")
    found = segments(counts.replace({"Paid Search": "gclid"}), kind="click_id")
    assert [(f.id, f.metric, f.severity) for f in found] == [("segment.click_id", "gclid", "warn")]
    assert found[0].message.startswith("gclid landings")


def test_a_count_is_never_judged_against_less_than_its_poisson_noise():
    # Five days of 20, 21, 19, 20, 20 orders (sd 0.71): 14 orders is z -8.5 against that spread, but
    # only -6 / sqrt(20) = -1.34 against the Poisson noise of a count of 20: no finding.
    days = days_back(5)
    frame = pd.DataFrame({"orders": [20.0, 21.0, 19.0, 20.0, 20.0, 14.0]}, index=pd.Index(days, name="date"))
    found, trend = mon.check_trends(frame, DAY, TrendRules(metrics={"orders": TrendMetric(min_abs_change=5)}))
    assert found == []
    last = trend[trend.date == DAY].iloc[0]
    assert last.sd == pytest.approx(20**0.5) and last.z == pytest.approx(-6 / 20**0.5)
