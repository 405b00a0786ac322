"""The statistics behind the monitors, as small pure functions.

* ``walk_clean`` — evaluate days in date order, each against a baseline made only of earlier days
  that were *not* flagged, so one bad day (or a run of them) does not become the new normal and
  hide the next one.
* ``weekday_profile`` / ``trailing_baseline`` / ``evaluate_trend`` / ``trend_series`` — z-score of a
  day against a trailing window that excludes the day itself, with day-of-week seasonality (values
  adjusted by their weekday's median level) when the window holds enough days of every weekday, a
  minimum absolute change, and the change vs the same weekday last week.
* ``psi`` / ``chi_square`` — how far a day's category shares are from a baseline's (population
  stability index: size of the shift; chi-square test of homogeneity: is it more than noise).
* ``one_way_anova`` — the F test behind the weekday pattern.

Both tests are the textbook formulas with their p-values from ``scipy.special``'s distribution
tails rather than ``scipy.stats``, whose import costs the daily run's kernel ~0.8 CPU-s
(``scipy.special`` alone ~0.3); tests/monitoring/test_monitoring_stats.py checks them against
``scipy.stats.chi2_contingency`` and ``f_oneway``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import TypeVar

import numpy as np
import pandas as pd
from scipy import special

R = TypeVar("R")


def walk_clean(
    days: Sequence[date],
    evaluate: Callable[[date, list[date]], R],
    baseline_for: Callable[[date, list[date]], list[date]],
    is_flagged: Callable[[R], bool],
) -> dict[date, R]:
    """Evaluate ``days`` in order; each day's baseline is chosen among earlier unflagged days.

    ``baseline_for(day, clean_days_so_far)`` picks the baseline days, ``evaluate(day, baseline)``
    scores the day and ``is_flagged(result)`` says whether it fired (then it never enters a later
    baseline).
    """
    clean: list[date] = []
    out: dict[date, R] = {}
    for d in sorted(days):
        result = evaluate(d, baseline_for(d, clean))
        out[d] = result
        if not is_flagged(result):
            clean.append(d)
    return out


# --- trend: z-score against a trailing, flag-excluding window ------------------------------------


@dataclass(frozen=True)
class Baseline:
    """What a day is compared with: expected value, spread, how many days, which method."""

    expected: float
    sd: float
    n: int
    method: str  # 'weekday' (seasonally adjusted) or 'trailing' (plain mean and sd)


WEEKLY_PATTERN_P = 0.01


def weekday_profile(history: pd.Series, min_same_weekday: int) -> dict[int, float] | None:
    """Median value per weekday (0 = Monday) of ``history``; None unless every weekday has
    at least ``min_same_weekday`` values and the weekdays differ by more than chance.

    Medians, so one odd day does not bend its weekday's level; computed from every day of the
    window, flagged or not, which lets the first weeks' weekend peaks count as normal instead of
    being flagged (and excluded) before there is enough history to know they recur.
    """
    values = history.dropna()
    if values.empty:
        return None
    by_weekday = values.groupby([d.weekday() for d in values.index])
    sizes = by_weekday.size()
    if len(sizes) < 7 or int(sizes.min()) < min_same_weekday:
        return None
    # Only a weekly pattern that stands out from day-to-day noise: three or four days per weekday
    # of a count around 20 give weekday medians that differ by chance (Fridays of 11, 12 and 19
    # orders in a month of ~21 a day), and adjusting by them turns the next ordinary Friday into an
    # outlier. One-way ANOVA across the weekdays, at 1%: the month checks this every day.
    groups = [g.to_numpy() for _, g in by_weekday]
    spread = sum(float(np.var(g)) for g in groups)
    if spread > 0 and one_way_anova(groups)[1] >= WEEKLY_PATTERN_P:
        return None
    return {int(w): float(v) for w, v in by_weekday.median().items()}


def trailing_baseline(
    history: pd.Series, day: date, *, min_history: int, profile: dict[int, float] | None = None
) -> Baseline | None:
    """Baseline of ``day`` from ``history`` (date -> value; the day itself must not be in it).

    Without a weekday ``profile``: expected = mean, sd = sample sd of the history. With one
    (day-of-week seasonality): each value is first adjusted by its weekday's level (x - m_w), then
    expected = mean of the adjusted values + m_w of ``day``, sd = sample sd of the adjusted values;
    so a weekend peak is compared with the weekend level while the spread still uses every day.
    None when fewer than ``min_history`` values are usable.
    """
    values = history.dropna()
    return _baseline(values.to_numpy(dtype=np.float64), [d.weekday() for d in values.index], day, min_history, profile)


def _baseline(
    values: np.ndarray, weekdays: Sequence[int], day: date, min_history: int, profile: dict[int, float] | None
) -> Baseline | None:
    """``trailing_baseline`` of the values (no NaN) of days with these weekdays, on numpy arrays:
    the trend walk calls it for every day of the history of every metric, where pandas' indexing
    cost more than the arithmetic. Mean and sd are computed as pandas computes them (sum / n;
    sum of squared deviations / (n - 1)), to the last bit."""
    if len(values) < min_history:
        return None
    if profile is None:
        return Baseline(_mean(values), _sample_sd(values), len(values), "trailing")
    adjusted = values - np.array([profile[w] for w in weekdays], dtype=np.float64)
    return Baseline(_mean(adjusted) + profile[day.weekday()], _sample_sd(adjusted), len(values), "weekday")


def _mean(values: np.ndarray) -> float:
    return float(values.sum(dtype=np.float64) / len(values)) if len(values) else math.nan


def _sample_sd(values: np.ndarray) -> float:
    if len(values) < 2:
        return math.nan
    squares = (values.sum(dtype=np.float64) / len(values) - values) ** 2
    return float(np.sqrt(squares.sum(dtype=np.float64) / (len(values) - 1)))


@dataclass(frozen=True)
class TrendPoint:
    """One day of one metric as the trend monitor saw it."""

    date: date
    value: float
    expected: float | None = None
    sd: float | None = None
    z: float | None = None
    low: float | None = None
    high: float | None = None
    flagged: bool = False
    extreme: bool = False  # flagged and beyond the error level too (``error_z`` and ``error_ratio``)
    method: str = "insufficient_history"
    n_baseline: int = 0
    week_ago: float | None = None
    wow_change: float | None = None  # relative change vs the same weekday one week earlier


def zscore(value: float, expected: float, sd: float) -> float:
    """(value - expected) / sd; 0 for no change and +-inf for a change over a constant history."""
    deviation = value - expected
    if sd > 0:
        return deviation / sd
    return 0.0 if deviation == 0 else math.copysign(math.inf, deviation)


def beyond_ratio(value: float, expected: float, ratio: float) -> bool:
    """``value`` is at least ``ratio`` times ``expected`` or at most ``expected / ratio``.

    Against an expected value of 0 any positive value is infinitely far; a negative expected value
    (never, for counts, amounts and shares) is compared on magnitudes.
    """
    value, expected = abs(value), abs(expected)
    if expected == 0:
        return value > 0
    return value >= expected * ratio or value <= expected / ratio


def evaluate_trend(
    value: float,
    baseline: Baseline | None,
    *,
    z_threshold: float,
    min_abs_change: float,
    direction: str,
    error_z: float | None = None,
    error_ratio: float | None = None,
    min_ratio: float | None = None,
) -> dict:
    """Score one value against its baseline; the keys are TrendPoint fields.

    It fires when |z| >= z_threshold AND |value - expected| >= min_abs_change AND the move is in a
    watched ``direction`` ('both', 'up', 'down'). The band [low, high] is exactly the range that
    does not fire: expected +- max(z_threshold * sd, min_abs_change); the unwatched side is None.
    A fired move is ``extreme`` when it also reaches the error level: |z| >= ``error_z`` and the
    value is ``error_ratio`` times the expected value or less than its 1/``error_ratio`` (a level
    set to None is not required; both None means no error level). Both, because a z-score alone
    explodes over a quiet history and a ratio alone over a tiny one. ``min_ratio`` (optional) also
    requires a fired move to reach that multiple (or 1/it) of the expected value.
    """
    if baseline is None:
        return {}
    z = zscore(value, baseline.expected, baseline.sd)
    deviation = value - baseline.expected
    watched = direction == "both" or (direction == "up" and deviation > 0) or (direction == "down" and deviation < 0)
    fired = (
        watched
        and abs(z) >= z_threshold
        and abs(deviation) >= min_abs_change
        and (min_ratio is None or beyond_ratio(value, baseline.expected, min_ratio))
    )
    extreme = (
        fired
        and (error_z is not None or error_ratio is not None)
        and (error_z is None or abs(z) >= error_z)
        and (error_ratio is None or beyond_ratio(value, baseline.expected, error_ratio))
    )
    half = max(z_threshold * baseline.sd, min_abs_change)
    return {
        "expected": baseline.expected,
        "sd": baseline.sd,
        "z": z,
        "flagged": bool(fired),
        "extreme": bool(extreme),
        "low": None if direction == "up" else baseline.expected - half,
        "high": None if direction == "down" else baseline.expected + half,
        "method": baseline.method,
        "n_baseline": baseline.n,
    }


def trend_series(
    series: pd.Series,
    *,
    window_days: int,
    min_history: int,
    min_same_weekday: int,
    z_threshold: float,
    min_abs_change: float = 0.0,
    direction: str = "both",
    baseline_start: date | None = None,
    error_z: float | None = None,
    error_ratio: float | None = None,
    min_ratio: float | None = None,
    sd_floor: Callable[[date, float], float] | None = None,
) -> list[TrendPoint]:
    """Walk a daily series (date -> value, the run date last) and score every day with a value.

    Each day's baseline: values in the ``window_days`` days before it (never the day itself), on or
    after ``baseline_start``, leaving out days that were themselves flagged. The weekday profile
    (seasonality) comes from the ``window_days`` days before the last date, i.e. the run date's
    window; it is used for every day of the walk, so earlier days are judged with the same
    knowledge of the weekly pattern. ``sd_floor(day, expected)``: the least spread the day's value
    can have from sampling alone (a count's Poisson noise); a baseline sd below it, as a few quiet
    days easily give, is raised to it.
    """
    series = series.dropna()
    series = series[[d for d in series.index if baseline_start is None or d >= baseline_start]]
    if series.empty:
        return []
    last = max(series.index)
    window = series[[d for d in series.index if last - timedelta(days=window_days) <= d < last]]
    profile = weekday_profile(window, min_same_weekday)

    value_of = dict(zip(series.index, series.to_numpy(dtype=np.float64).tolist(), strict=True))

    def baseline_for(day: date, clean: list[date]) -> list[date]:
        # ``clean`` grows in date order: the window is a slice of it
        return clean[bisect.bisect_left(clean, day - timedelta(days=window_days)) : bisect.bisect_left(clean, day)]

    def evaluate(day: date, base_days: list[date]) -> TrendPoint:
        value = value_of[day]
        base = np.array([value_of[d] for d in base_days], dtype=np.float64)
        baseline = _baseline(base, [d.weekday() for d in base_days], day, min_history, profile)
        if baseline is not None and sd_floor is not None:
            baseline = replace(baseline, sd=max(baseline.sd, sd_floor(day, baseline.expected)))
        week_ago = value_of.get(day - timedelta(days=7))
        wow = None
        if week_ago is not None and week_ago != 0:
            wow = (value - week_ago) / abs(week_ago)
        return TrendPoint(
            day,
            value,
            week_ago=week_ago,
            wow_change=wow,
            **evaluate_trend(
                value,
                baseline,
                z_threshold=z_threshold,
                min_abs_change=min_abs_change,
                direction=direction,
                error_z=error_z,
                error_ratio=error_ratio,
                min_ratio=min_ratio,
            ),
        )

    result = walk_clean(list(series.index), evaluate, baseline_for, lambda p: p.flagged)
    return [result[d] for d in sorted(result)]


# --- category mix: PSI and chi-square -------------------------------------------------------------


def _aligned(actual: Mapping[str, float], expected: Mapping[str, float]) -> tuple[list[str], np.ndarray, np.ndarray]:
    cats = sorted(set(actual) | set(expected))
    a = np.array([float(actual.get(c, 0.0)) for c in cats])
    e = np.array([float(expected.get(c, 0.0)) for c in cats])
    return cats, a, e


def shares(counts: Mapping[str, float]) -> dict[str, float]:
    """Each category's share of the total (empty when the total is 0)."""
    total = float(sum(counts.values()))
    return {k: float(v) / total for k, v in counts.items()} if total > 0 else {}


def psi(actual: Mapping[str, float], expected: Mapping[str, float], epsilon: float = 1e-4) -> float:
    """Population stability index of ``actual`` vs ``expected`` (counts or amounts per category).

    PSI = sum over categories of (a_i - e_i) * ln(a_i / e_i) with a, e the shares. A share of 0 is
    floored at ``epsilon`` inside the formula so a channel that appears or vanishes gives a large
    but finite value. Rule of thumb: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 large shift.
    """
    _, a, e = _aligned(actual, expected)
    if a.sum() <= 0 or e.sum() <= 0:
        return float("nan")
    p = np.maximum(a / a.sum(), epsilon)
    q = np.maximum(e / e.sum(), epsilon)
    return float(np.sum((p - q) * np.log(p / q)))


def chi_square(actual: Mapping[str, float], expected: Mapping[str, float]) -> tuple[float, float, int]:
    """Chi-square test of homogeneity of two count vectors (the day vs the pooled baseline).

    A 2 x K contingency table (categories empty on both sides dropped), no Yates correction:
    returns (statistic, p-value, degrees of freedom). With fewer than two categories nothing can
    differ: (0.0, 1.0, 0).
    """
    _, a, e = _aligned(actual, expected)
    keep = (a + e) > 0
    a, e = a[keep], e[keep]
    if len(a) < 2 or a.sum() <= 0 or e.sum() <= 0:
        return 0.0, 1.0, 0
    observed = np.vstack([a, e])
    # Under homogeneity each cell expects its row's total times its column's share of the grand total.
    expected = observed.sum(axis=1, keepdims=True) * observed.sum(axis=0, keepdims=True) / observed.sum()
    if np.any(expected == 0):
        raise ValueError(f"chi-square: counts too small to test (an expected count underflows to 0): {a}, {e}")
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    dof = len(a) - 1  # (rows - 1) * (columns - 1) with two rows
    return statistic, float(special.chdtrc(dof, statistic)), dof


def one_way_anova(groups: Sequence[np.ndarray]) -> tuple[float, float]:
    """One-way ANOVA (equal variances) of two or more groups of values: (F statistic, p-value).

    F is the between-groups mean square over the within-groups one; the p-value is the F
    distribution's upper tail. Both are NaN when a group is empty or no group has two values, or
    when every value is the same; F is +inf (p 0) when each group is constant but they differ.
    """
    samples = [np.asarray(g, dtype=np.float64) for g in groups]
    if len(samples) < 2:
        raise ValueError(f"one-way ANOVA needs at least two groups; got {len(samples)}")
    n, k = sum(len(s) for s in samples), len(samples)
    if any(len(s) == 0 for s in samples) or n == k:
        return math.nan, math.nan
    if all(np.ptp(s) == 0 for s in samples):  # decided exactly: a constant group's mean may not round-trip
        if np.ptp(np.concatenate(samples)) == 0:
            return math.nan, math.nan
        return math.inf, 0.0
    grand_mean = np.concatenate(samples).mean()
    between = sum(len(s) * (s.mean() - grand_mean) ** 2 for s in samples)
    within = sum(float(np.sum((s - s.mean()) ** 2)) for s in samples)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = float((between / (k - 1)) / (within / (n - k)))
    return f, float(special.fdtrc(k - 1, n - k, f))
