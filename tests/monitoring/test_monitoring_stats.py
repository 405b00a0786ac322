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
