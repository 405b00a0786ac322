"""The report's statistical helpers against values worked out independently (by hand / closed form)."""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from puffy.report import stats

Z95 = norm.ppf(0.975)  # 1.959964...


def test_wilson_interval_for_5_of_100_matches_the_formula():
    # By hand: p = 0.05, n = 100, z = 1.96
    #   centre = (p + z²/2n) / (1 + z²/n) = (0.05 + 0.019208) / 1.038415 = 0.066648
    #   half   = z/(1 + z²/n) · sqrt(p(1-p)/n + z²/4n²) = 1.887458 · sqrt(0.000475 + 0.0000960) = 0.045104
    #   → [0.02154, 0.11175]
    r = stats.wilson_interval(5, 100)
    p, n, z = 0.05, 100, Z95
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert r.rate == pytest.approx(0.05)
    assert r.low == pytest.approx(centre - half, abs=1e-9)
    assert r.high == pytest.approx(centre + half, abs=1e-9)
    assert (round(r.low, 4), round(r.high, 4)) == (0.0215, 0.1118)


def test_wilson_interval_edge_cases():
    zero = stats.wilson_interval(0, 50)
    assert zero.low == pytest.approx(0.0, abs=1e-12) and 0 < zero.high < 0.1  # never below 0
    assert math.isnan(stats.wilson_interval(0, 0).rate)
    assert stats.wilson_interval(50, 50).high == pytest.approx(1.0)


def test_two_proportion_ztest_matches_hand_computation():
    # 10/100 vs 20/100: pooled p = 0.15, se = sqrt(0.15·0.85·(1/100 + 1/100)) = 0.0504975
    # z = (0.10 - 0.20) / 0.0504975 = -1.980295 ; two-sided p = 2·Φ(-1.980295) = 0.047670
    t = stats.two_proportion_ztest(10, 100, 20, 100)
    se = math.sqrt(0.15 * 0.85 * (2 / 100))
    assert t.z == pytest.approx(-0.1 / se, rel=1e-9)
    assert t.z == pytest.approx(-1.980295, abs=1e-6)
    assert t.p_value == pytest.approx(2 * norm.cdf(-0.1 / se), rel=1e-9)
    assert t.p_value == pytest.approx(0.047670, abs=1e-6)
    assert t.diff == pytest.approx(-0.10)
    assert t.diff_low < t.diff < t.diff_high < 0  # significant at 5%: the interval excludes 0
    assert t.significant(0.05) and not t.significant(0.01)


def test_two_proportion_ztest_with_nothing_to_compare():
    t = stats.two_proportion_ztest(0, 100, 0, 200)
    assert t.z == 0 and t.p_value == 1


def _sessions_from_2x2(a: int, b: int, c: int, d: int) -> pd.DataFrame:
    """Returning: a buyers, b non-buyers; new: c buyers, d non-buyers; everything else constant."""
    bought = [True] * a + [False] * b + [True] * c + [False] * d
    returning = [True] * (a + b) + [False] * (c + d)
    n = len(bought)
    return pd.DataFrame(
        {
            "purchased": bought,
            "is_returning_client": returning,
            "channel": ["Direct"] * n,
            "device_type": ["desktop"] * n,
            "session_date": [date(2025, 3, 3)] * n,
        }
    )


def test_logit_odds_ratio_equals_the_2x2_odds_ratio():
    a, b, c, d = 30, 270, 40, 1160
    res = stats.conversion_logit(_sessions_from_2x2(a, b, c, d))
    row = res.odds_ratio("visitor", "Returning")
    by_hand = (a * d) / (b * c)  # (30·1160)/(270·40) = 3.2222
    assert row["odds_ratio"] == pytest.approx(by_hand, rel=1e-6)
    # The logit's Wald interval is Woolf's interval of the 2x2 table.
    se = math.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
    assert row["ci_low"] == pytest.approx(math.exp(math.log(by_hand) - Z95 * se), rel=1e-5)
    assert row["ci_high"] == pytest.approx(math.exp(math.log(by_hand) + Z95 * se), rel=1e-5)
    # Constant variables are left out and said so.
    assert set(res.table["variable"]) == {"visitor"}
    assert any("channel" in n for n in res.notes)


def test_logit_pools_levels_without_purchases_instead_of_failing():
    rng = np.random.default_rng(3)
    n = 4000
    channel = rng.choice(["Direct", "Email", "Paid Social", "SMS"], size=n, p=[0.5, 0.2, 0.2, 0.1])
    p = np.select([channel == "Email", channel == "Direct"], [0.08, 0.03], 0.0)  # two levels never buy
    df = pd.DataFrame(
        {
            "purchased": rng.random(n) < p,
            "channel": channel,
            "device_type": rng.choice(["mobile", "desktop"], size=n),
            "is_returning_client": rng.random(n) < 0.2,
            "session_date": [date(2025, 3, 1) + timedelta(days=int(i)) for i in rng.integers(0, 7, n)],
        }
    )
    res = stats.conversion_logit(df, min_level_conversions=5)
    assert res.pooled["channel"] == ["Paid Social", "SMS"]
    assert set(res.table.loc[res.table["variable"] == "channel", "level"]) == {"Email"}
    assert any("Paid Social, SMS" in n for n in res.notes)  # the never-buying pool is left out, and said so
    assert res.references["channel"] == "Direct"
    assert res.odds_ratio("channel", "Email")["odds_ratio"] > 1
    assert np.isfinite(res.table[["odds_ratio", "ci_low", "ci_high"]].to_numpy()).all()


def test_logit_without_any_purchase_is_reported_not_raised():
    df = _sessions_from_2x2(0, 10, 0, 10)
    res = stats.conversion_logit(df)
    assert res.table.empty and not res.converged and res.notes


def test_bootstrap_interval_contains_the_mean_and_is_reproducible():
    values = np.random.default_rng(0).lognormal(7, 0.5, size=300)
    a = stats.bootstrap_mean(values, n_resamples=1000, seed=42)
    b = stats.bootstrap_mean(values, n_resamples=1000, seed=42)
    c = stats.bootstrap_mean(values, n_resamples=1000, seed=43)
    assert a.estimate == pytest.approx(values.mean())
    assert a.low < values.mean() < a.high
    assert a == b  # seeded: same data, same interval
    assert (a.low, a.high) != (c.low, c.high)
    # Roughly the normal-theory interval (mean ± 1.96·sd/√n) for a sample this size.
    se = values.std(ddof=1) / math.sqrt(len(values))
    assert a.low == pytest.approx(values.mean() - Z95 * se, rel=0.02)


def test_bootstrap_difference_sees_a_real_shift():
    rng = np.random.default_rng(1)
    x, y = rng.normal(1100, 200, 400), rng.normal(1000, 200, 400)
    r = stats.bootstrap_mean_difference(x, y, n_resamples=2000, seed=7)
    assert r.low < x.mean() - y.mean() < r.high
    assert r.low > 0 and r.p_value < 0.01


def test_linear_trend_recovers_a_line_and_its_uncertainty():
    days = pd.Index([date(2025, 3, 1) + timedelta(days=i) for i in range(14)])
    exact = stats.linear_trend(pd.Series(5.0 + 2.0 * np.arange(14), index=days))
    assert exact.slope == pytest.approx(2.0)
    assert exact.slope_low == pytest.approx(2.0, abs=1e-6) and exact.p_value < 1e-6
    assert exact.change_over_period == pytest.approx(2.0 * 13 / exact.mean)

    noisy = pd.Series(100 + 3 * np.arange(14) + np.random.default_rng(2).normal(0, 10, 14), index=days)
    t = stats.linear_trend(noisy)
    slope, intercept = np.polyfit(np.arange(14), noisy.to_numpy(), 1)
    assert t.slope == pytest.approx(slope)
    assert t.slope_low < slope < t.slope_high
    assert (t.fitted["low"] <= t.fitted["fit"]).all() and (t.fitted["fit"] <= t.fitted["high"]).all()
    assert math.isnan(stats.linear_trend(pd.Series([1.0, 2.0])).slope)  # too few days


def test_count_ratio_and_welch_tests():
    same = stats.count_ratio_test(50, 50)
    assert same.estimate == 1 and same.p_value == pytest.approx(1.0) and same.low < 1 < same.high
    up = stats.count_ratio_test(150, 100)
    assert up.estimate == pytest.approx(1.5) and up.p_value < 0.01 and up.low > 1
    w = stats.welch_test([10, 12, 11, 13], [1, 2, 1, 2])
    assert w.estimate == pytest.approx(11.5 - 1.5) and w.low > 0 and w.p_value < 0.01
