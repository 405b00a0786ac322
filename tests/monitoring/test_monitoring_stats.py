"""puffy.monitoring.stats: z-scores, seasonality, PSI and chi-square against hand-worked values."""

from __future__ import annotations

import math
from datetime import date, timedelta

import pandas as pd
import pytest

from puffy.monitoring import stats

D0 = date(2025, 3, 3)  # a Monday


def series(values, start=D0) -> pd.Series:
    return pd.Series(values, index=[start + timedelta(days=i) for i in range(len(values))], dtype="float64")


def walk(values, **kw):
    defaults = dict(window_days=28, min_history=5, min_same_weekday=99, z_threshold=3.0)
    return stats.trend_series(series(values), **{**defaults, **kw})


# --- PSI ------------------------------------------------------------------------------------------


def test_psi_matches_hand_computation():
    # day shares a = (.3, .5, .2), baseline e = (.5, .3, .2)
    # PSI = (.3-.5) ln(.3/.5) + (.5-.3) ln(.5/.3) + 0 = .2 ln(5/3) + .2 ln(5/3) = .4 * 0.5108256 = 0.2043302
    value = stats.psi({"A": 30, "B": 50, "C": 20}, {"A": 50, "B": 30, "C": 20})
    assert value == pytest.approx(0.4 * math.log(5 / 3)) and value == pytest.approx(0.2043302, abs=1e-7)


def test_psi_of_identical_mixes_is_zero_and_scale_free():
    assert stats.psi({"A": 1, "B": 3}, {"A": 100, "B": 300}) == pytest.approx(0.0)


def test_psi_floors_a_vanished_category_at_epsilon():
    # a = (1, 0 -> 1e-4), e = (.5, .5):
    # (1 - .5) ln(1/.5) + (1e-4 - .5) ln(1e-4/.5) = .5 ln 2 + (-.4999)(ln 1e-4 - ln .5)
    #  = 0.3465736 + (-.4999)(-8.5171932) = 0.3465736 + 4.2577448 = 4.6043184
    value = stats.psi({"A": 100}, {"A": 50, "B": 50}, epsilon=1e-4)
    assert value == pytest.approx(4.6043184, abs=1e-6)


# --- chi-square -----------------------------------------------------------------------------------


def test_chi_square_matches_hand_computation():
    # 2 x 3 table: day (30, 50, 20), baseline (50, 30, 20); row totals 100 / 100, column totals 80 / 80 / 40,
    # so every expected cell is (40, 40, 20). chi2 = 4 * (10^2 / 40) + 0 = 10 with (2-1)(3-1) = 2 dof,
    # and for 2 dof the chi-square survival function is exp(-x/2): p = exp(-5) = 0.0067379.
    chi2, p, dof = stats.chi_square({"A": 30, "B": 50, "C": 20}, {"A": 50, "B": 30, "C": 20})
    assert chi2 == pytest.approx(10.0)
    assert dof == 2
    assert p == pytest.approx(math.exp(-5))


def test_chi_square_two_categories_has_no_yates_correction():
    # (50, 50) vs (75, 25): expected 62.5 / 37.5 per row; chi2 = 2 * 12.5^2/62.5 + 2 * 12.5^2/37.5 = 13.3333,
    # 1 dof: p = erfc(sqrt(chi2 / 2)) = 0.000261
    chi2, p, dof = stats.chi_square({"a": 50, "b": 50}, {"a": 75, "b": 25})
    assert chi2 == pytest.approx(40 / 3)
    assert dof == 1
    assert p == pytest.approx(math.erfc(math.sqrt(20 / 3)))


def test_chi_square_with_one_category_cannot_differ():
    assert stats.chi_square({"Direct": 10}, {"Direct": 70}) == (0.0, 1.0, 0)


def test_chi_square_drops_categories_empty_on_both_sides():
    assert stats.chi_square({"A": 30, "B": 50, "C": 20, "D": 0}, {"A": 50, "B": 30, "C": 20})[2] == 2


# --- z-score: trailing window, the day and flagged days excluded ----------------------------------


def test_trailing_baseline_is_mean_and_sample_sd():
    # 10, 12, 14, 16, 18: mean 14, deviations^2 16+4+0+4+16 = 40, sample variance 40/4 = 10
    b = stats.trailing_baseline(series([10, 12, 14, 16, 18]), D0 + timedelta(days=5), min_history=5)
    assert (b.expected, b.sd, b.n, b.method) == (14.0, pytest.approx(math.sqrt(10)), 5, "trailing")


def test_the_trend_walks_numpy_baseline_is_pandas_mean_and_sd_to_the_last_bit():
    """The walk computes baselines on numpy arrays (pandas' indexing cost more than the arithmetic
    once the history is months long): the same floats as pandas' mean and std, not merely close."""
    import numpy as np

    rng = np.random.default_rng(7)
    for n in (2, 3, 7, 28, 90):
        for values in (rng.normal(1e4, 3e3, n), rng.random(n) / 3, rng.integers(0, 50, n).astype(float)):
            history = series(list(values))
            b = stats._baseline(history.to_numpy(), [d.weekday() for d in history.index], D0, 1, None)
            assert (b.expected, b.sd) == (float(history.mean()), float(history.std(ddof=1)))
            profile = {w: float(w * 1.5 + 0.1) for w in range(7)}
            adjusted = history - [profile[d.weekday()] for d in history.index]
            b = stats._baseline(history.to_numpy(), [d.weekday() for d in history.index], D0, 1, profile)
            assert (b.expected, b.sd) == (float(adjusted.mean()) + profile[D0.weekday()], float(adjusted.std(ddof=1)))


def test_zscore_excludes_the_day_itself():
    points = walk([10, 12, 14, 16, 18, 30])
    last = points[-1]
    # against 10..18 only: z = (30 - 14) / sqrt(10) = 5.0596; with the day inside, mean would be 16.67
    assert last.expected == pytest.approx(14.0)
    assert last.z == pytest.approx(16 / math.sqrt(10))
    assert last.flagged and last.n_baseline == 5


def test_flagged_days_do_not_enter_later_baselines():
    points = walk([10, 12, 14, 16, 18, 100, 100])
    day5, day6 = points[5], points[6]
    assert day5.flagged
    # day 6 is still judged against the five normal days, not against a baseline polluted by day 5
    # (with day 5 included: mean 28.3, sd 35.1, z 2.0 -> it would slip through)
    assert day6.flagged and day6.n_baseline == 5 and day6.expected == pytest.approx(14.0)


def test_window_is_trailing_only():
    # with a 5-day window the first five days are out of the last day's baseline
    last = walk([10, 12, 14, 16, 18, 10, 12, 14, 16, 18, 14], window_days=5)[-1]
    assert last.n_baseline == 5 and last.expected == pytest.approx(14.0)


def test_insufficient_history_is_reported_not_guessed():
    points = walk([10, 12, 14, 100])
    assert all(p.expected is None and not p.flagged and p.method == "insufficient_history" for p in points)


def three_weeks() -> pd.Series:
    """Mon..Fri level 10, Saturday 20, Sunday 30; week 1 +0, week 2 +1, week 3 -1 on every day."""
    level = [10, 10, 10, 10, 10, 20, 30]
    return series([level[i % 7] + (0, 1, -1)[i // 7] for i in range(21)])


def test_weekday_profile_is_the_median_per_weekday():
    assert stats.weekday_profile(three_weeks(), min_same_weekday=3) == {0: 10, 1: 10, 2: 10, 3: 10, 4: 10, 5: 20, 6: 30}
    assert stats.weekday_profile(three_weeks(), min_same_weekday=4) is None  # only 3 of each weekday
    assert stats.weekday_profile(three_weeks().iloc[:-1], min_same_weekday=3) is None  # a Sunday short


def test_weekday_baseline_matches_hand_computation():
    # Adjusted values x - median(weekday) are exactly the weekly offsets: seven 0s, seven +1s, seven -1s.
    # mean 0, sample sd sqrt((7 + 7) / 20) = sqrt(0.7) = 0.83666; a Monday expects 0 + 10, a Sunday 0 + 30.
    history = three_weeks()
    profile = stats.weekday_profile(history, 3)
    monday, sunday = D0 + timedelta(weeks=3), D0 + timedelta(weeks=3, days=6)
    b = stats.trailing_baseline(history, monday, min_history=5, profile=profile)
    assert b.method == "weekday" and b.n == 21
    assert b.expected == pytest.approx(10.0) and b.sd == pytest.approx(math.sqrt(0.7))
    assert stats.trailing_baseline(history, sunday, min_history=5, profile=profile).expected == pytest.approx(30.0)


def weekly(weeks: int, last: float) -> list[float]:
    """Weekdays ~100, the 6th day of each week (a Saturday from a Monday start) ~200; then ``last``."""
    values = []
    for i in range(weeks * 7):
        wiggle = (i % 3) - 1  # -1, 0, 1: a little spread
        values.append((200 if i % 7 == 5 else 100) + wiggle)
    values += [100.0] * 5 + [last]  # Monday..Friday normal, then the Saturday under test
    return values


def trend(values, **kw):
    defaults = dict(window_days=28, min_history=5, min_same_weekday=3, z_threshold=3.0)
    return stats.trend_series(series(values), **{**defaults, **kw})


def test_seasonality_judges_a_saturday_against_saturdays():
    normal = trend(weekly(3, 200))
    assert normal[-1].method == "weekday" and not normal[-1].flagged
    assert normal[-1].expected == pytest.approx(200, abs=1)
    # the earlier Saturday peaks are not anomalies either (so they stay in the baselines)
    assert not any(p.flagged for p in normal)
    # A Saturday at weekday level is a collapse for a Saturday ...
    low = trend(weekly(3, 100))[-1]
    assert low.flagged and low.z < -10
    # ... which a plain trailing window (mean ~114, sd ~35 with the peaks in it) would call normal,
    # and without seasonality the weekly peaks themselves get flagged.
    plain = trend(weekly(3, 100), min_same_weekday=99)
    assert plain[-1].method == "trailing" and not plain[-1].flagged
    assert any(p.flagged for p in plain)


def test_seasonality_needs_enough_of_every_weekday():
    assert trend(weekly(1, 200))[-1].method == "trailing"


def test_min_abs_change_keeps_tiny_moves_quiet():
    values = [100.0, 100.1, 99.9, 100.0, 100.1, 101.0]  # sd ~0.08: z ~12 for a move of 1
    loud = walk(values)[-1]
    quiet = walk(values, min_abs_change=5)[-1]
    assert loud.flagged and not quiet.flagged
    assert quiet.z > 3  # the z-score alone would have fired
    # the band is expected +- max(3 * sd, 5)
    assert quiet.high == pytest.approx(quiet.expected + 5) and quiet.low == pytest.approx(quiet.expected - 5)


def test_direction_up_ignores_drops_and_has_no_low_edge():
    values = [0.01, 0.011, 0.009, 0.01, 0.012]
    drop = stats.trend_series(
        series(values + [0.0]), window_days=28, min_history=5, min_same_weekday=3, z_threshold=3.0, direction="up"
    )[-1]
    rise = stats.trend_series(
        series(values + [0.15]),
        window_days=28,
        min_history=5,
        min_same_weekday=3,
        z_threshold=3.0,
        direction="up",
        min_abs_change=0.02,
    )[-1]
    assert not drop.flagged and drop.low is None
    assert rise.flagged


def test_constant_history_fires_only_beyond_min_abs_change():
    assert stats.zscore(5, 5, 0) == 0.0 and math.isinf(stats.zscore(6, 5, 0))
    assert not walk([5, 5, 5, 5, 5, 5], min_abs_change=1)[-1].flagged
    assert walk([5, 5, 5, 5, 5, 7], min_abs_change=1)[-1].flagged


def test_week_over_week_change():
    values = [100, 100, 100, 100, 100, 100, 100, 120]
    last = walk(values)[-1]
    assert last.week_ago == 100 and last.wow_change == pytest.approx(0.2)


def test_baseline_start_drops_older_days():
    values = [50, 50, 50, 50, 50, 10, 12, 14, 16, 18, 14]
    last = walk(values, baseline_start=D0 + timedelta(days=5))[-1]
    assert last.n_baseline == 5 and last.expected == pytest.approx(14.0)


def test_walk_clean_passes_only_unflagged_days():
    seen = {}

    def evaluate(day, base):
        seen[day] = list(base)
        return day.day % 2 == 0  # even days are "flagged"

    days = [date(2025, 3, d) for d in range(1, 6)]
    stats.walk_clean(days, evaluate, lambda d, clean: clean, lambda r: r)
    assert seen[date(2025, 3, 5)] == [date(2025, 3, 1), date(2025, 3, 3)]


# --- the two tests agree with SciPy's without importing scipy.stats ---------------------------------
# The reference below is what stats.py called before (scipy.stats.f_oneway / chi2_contingency); the
# daily run's kernel no longer imports scipy.stats (~0.8 CPU-s). Same value to 1e-9 relative (the
# sums run in another order), and so the same side of every threshold the monitors use.


def _same(got: float, want: float) -> bool:
    if math.isnan(want) or math.isinf(want):
        return got == want or (math.isnan(got) and math.isnan(want))
    return got == pytest.approx(want, rel=1e-9, abs=1e-300)


def _scipy_chi_square(actual, expected) -> tuple[float, float, int]:
    """stats.chi_square as it was, on scipy.stats.chi2_contingency."""
    import numpy as np
    from scipy import stats as sps

    cats = sorted(set(actual) | set(expected))
    a = np.array([float(actual.get(c, 0.0)) for c in cats])
    e = np.array([float(expected.get(c, 0.0)) for c in cats])
    keep = (a + e) > 0
    a, e = a[keep], e[keep]
    if len(a) < 2 or a.sum() <= 0 or e.sum() <= 0:
        return 0.0, 1.0, 0
    result = sps.chi2_contingency(np.vstack([a, e]), correction=False)
    return float(result.statistic), float(result.pvalue), int(result.dof)


def _count_mixes(seed: int, n: int):
    """Random pairs of category counts: 1-15 categories, ties, zeros on one or both sides, tiny and
    huge counts, fractional amounts (credit sums)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    for i in range(n):
        k = int(rng.integers(1, 16))
        kind = i % 5
        if kind == 0:
            a, e = rng.integers(0, 4, k), rng.integers(0, 4, k)  # tiny counts, many zeros and ties
        elif kind == 1:
            a, e = rng.integers(0, 2_000, k), rng.integers(0, 20_000, k)
        elif kind == 2:
            a, e = rng.integers(0, 10**9, k), rng.integers(0, 10**9, k)  # huge
        elif kind == 3:
            a, e = rng.random(k) * rng.integers(1, 500), rng.random(k) * rng.integers(1, 5_000)  # amounts
        else:
            a = rng.integers(0, 50, k)
            e = a * int(rng.integers(1, 9))  # the same mix at another scale: chi2 ~ 0
        a = np.where(rng.random(k) < 0.2, 0, a)
        yield {f"c{j}": float(v) for j, v in enumerate(a)}, {f"c{j}": float(v) for j, v in enumerate(e)}


def test_chi_square_agrees_with_scipys_chi2_contingency():
    cases = list(_count_mixes(seed=17, n=3_000))
    cases += [
        ({"A": 30, "B": 50, "C": 20}, {"A": 50, "B": 30, "C": 20}),
        ({"a": 50, "b": 50}, {"a": 75, "b": 25}),
        ({"a": 1, "b": 0}, {"a": 0, "b": 1}),  # each side one category: dof 1, the largest chi2
        ({"a": 1}, {"b": 1}),
        ({"a": 5, "b": 5}, {"a": 5, "b": 5}),  # identical: chi2 0, p 1
        ({"a": 1e-150, "b": 3e-150}, {"a": 2e-150, "b": 1e-150}),  # expected cells ~1e-150
        ({"a": 10**15, "b": 1}, {"a": 1, "b": 10**15}),  # p underflows to 0
        ({"Direct": 10}, {"Direct": 70}),  # one category
        ({}, {"a": 3}),
        ({"a": 0, "b": 0}, {"a": 3, "b": 4}),  # an empty day
    ]
    differ = [(a, e) for a, e in cases if not all(map(_same, stats.chi_square(a, e), _scipy_chi_square(a, e)))]
    # Counts so small that an expected cell underflows to 0: an error, as SciPy's.
    tiny = ({"a": 1e-300, "b": 1e-300}, {"a": 1e-300, "b": 2e-300})
    with pytest.raises(ValueError):
        _scipy_chi_square(*tiny)
    with pytest.raises(ValueError, match="underflows"):
        stats.chi_square(*tiny)
    assert not differ, f"{len(differ)} of {len(cases)} differ, e.g. {differ[:3]}"


def _anova_groups(seed: int, n: int):
    """Random groups as the weekday pattern has them (2-7 groups of 1-6 values: counts with ties,
    rates, amounts, constant groups, one large outlier), plus shapes f_oneway rejects as too small."""
    import numpy as np

    rng = np.random.default_rng(seed)
    for i in range(n):
        k = int(rng.integers(2, 8))
        sizes = rng.integers(1, 7, k)
        kind = i % 6
        if kind == 0:
            groups = [rng.integers(0, 5, s).astype(float) for s in sizes]  # small counts, ties
        elif kind == 1:
            groups = [rng.poisson(rng.integers(1, 3_000), s).astype(float) for s in sizes]
        elif kind == 2:
            groups = [rng.random(s) * 0.05 for s in sizes]  # rates
        elif kind == 3:
            groups = [np.full(s, float(rng.integers(0, 3))) for s in sizes]  # each group constant
        elif kind == 4:
            groups = [rng.normal(1e6, 1e3, s) for s in sizes]  # large, close values
        else:
            groups = [rng.normal(0, 1, s) for s in sizes]
            groups[0] = np.append(groups[0], 1e12)  # one wild value
        yield groups


def test_one_way_anova_agrees_with_scipys_f_oneway():
    import warnings

    import numpy as np
    from scipy import stats as sps

    cases = list(_anova_groups(seed=23, n=3_000))
    cases += [
        [np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0])],  # identical groups: F 0, p 1
        [np.array([3.0, 3.0]), np.array([5.0, 5.0, 5.0])],  # constant groups that differ: F inf
        [np.array([3.0, 3.0]), np.array([3.0])],  # every value the same: F NaN
        [np.array([0.0, 0.0, 1.0]), np.array([0.0]), np.array([0.0, 0.0])],
        [np.array([1.0]), np.array([2.0])],  # one value per group: too small, NaN
        [np.array([]), np.array([1.0, 2.0])],  # an empty group: NaN
        [np.array([10.0, 12, 11, 19]), np.array([21.0, 20, 22]), np.array([30.0, 29, 31])],
    ]
    differ = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns about the too-small and constant inputs
        for groups in cases:
            want = sps.f_oneway(*groups)
            if not all(map(_same, stats.one_way_anova(groups), (float(want.statistic), float(want.pvalue)))):
                differ.append(groups)
    assert not differ, f"{len(differ)} of {len(cases)} differ, e.g. {differ[:2]}"


def test_the_monitoring_stack_does_not_import_scipy_stats():
    import subprocess
    import sys

    code = "import sys, puffy.monitoring.stage, puffy.monitoring.report; print('scipy.stats' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
