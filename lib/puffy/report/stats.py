"""The statistics behind the executive summary (statsmodels / numpy), as small pure functions.

* :func:`wilson_interval` — a conversion rate with its Wilson score interval (better than the
  textbook ±1.96·SE at rates near 0, which is where conversion rates live);
* :func:`two_proportion_ztest` — are two conversion rates really different? (pooled z-test, and a
  Newcombe interval for the difference);
* :func:`conversion_logit` — logistic regression of "did the session buy?" on channel, device,
  weekday and new/returning, reported as odds ratios with intervals: the effect of each factor
  with the others held fixed;
* :func:`bootstrap_mean` / :func:`bootstrap_mean_difference` — intervals for the average order
  value without assuming a bell curve (order values are skewed); seeded, so reproducible;
* :func:`linear_trend` — OLS line through a daily series with an interval for its slope and a
  band for the fitted line;
* :func:`welch_test` — difference of two means (e.g. revenue per day in two periods);
* :func:`count_ratio_test` — ratio of two counts over equal time (orders this period vs last).

Everything returns plain dataclasses so the narrative can quote the numbers it relies on.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats as sps
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint, proportions_ztest


@dataclass(frozen=True)
class Proportion:
    """``successes`` of ``n`` with the rate and its interval (NaN when n = 0)."""

    successes: int
    n: int
    rate: float
    low: float
    high: float


def wilson_interval(successes: int, n: int, level: float = 0.95) -> Proportion:
    """Wilson score interval of a proportion.

    For 5 of 100 at 95% this is [2.15%, 11.18%]: asymmetric around 5%, and never below 0, unlike
    the normal approximation (5% ± 4.3%).
    """
    if n <= 0:
        return Proportion(int(successes), int(n), math.nan, math.nan, math.nan)
    low, high = proportion_confint(successes, n, alpha=1 - level, method="wilson")
    return Proportion(int(successes), int(n), successes / n, float(low), float(high))


@dataclass(frozen=True)
class ZTest:
    """Two-proportion comparison: rate 1 vs rate 2."""

    rate1: float
    rate2: float
    diff: float  # rate1 - rate2
    diff_low: float  # interval of the difference (Newcombe)
    diff_high: float
    z: float
    p_value: float

    def significant(self, alpha: float = 0.05) -> bool:
        return not math.isnan(self.p_value) and self.p_value < alpha


def two_proportion_ztest(x1: int, n1: int, x2: int, n2: int, level: float = 0.95) -> ZTest:
    """Pooled two-proportion z-test of x1/n1 vs x2/n2 (two-sided).

    z = (p1 - p2) / sqrt(p(1-p)(1/n1 + 1/n2)) with p the pooled rate (x1+x2)/(n1+n2). When both
    rates are 0 (or 1) there is nothing to test: z = 0, p = 1.
    """
    if n1 <= 0 or n2 <= 0:
        return ZTest(math.nan, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan)
    p1, p2 = x1 / n1, x2 / n2
    pooled = (x1 + x2) / (n1 + n2)
    if pooled in (0.0, 1.0):
        z, p = 0.0, 1.0
    else:
        z, p = proportions_ztest([x1, x2], [n1, n2], alternative="two-sided")
    low, high = confint_proportions_2indep(x1, n1, x2, n2, method="newcomb", compare="diff", alpha=1 - level)
    return ZTest(p1, p2, p1 - p2, float(low), float(high), float(z), float(p))


@dataclass(frozen=True)
class Interval:
    """A point estimate with an interval (bootstrap or t-based)."""

    estimate: float
    low: float
    high: float
    p_value: float = math.nan  # only for tests


def bootstrap_mean(values, n_resamples: int = 2000, seed: int = 0, level: float = 0.95) -> Interval:
    """Percentile bootstrap interval of the mean of ``values`` (e.g. order revenues → AOV).

    Resampling the orders themselves makes no assumption about the shape of the order-value
    distribution (a few large orders are normal). Seeded: same data, same interval.
    """
    x = np.asarray(pd.Series(values).dropna(), dtype="float64")
    if x.size == 0:
        return Interval(math.nan, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_resamples, x.size))].mean(axis=1)
    tail = (1 - level) / 2
    return Interval(float(x.mean()), float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail)))


def bootstrap_mean_difference(a, b, n_resamples: int = 2000, seed: int = 0, level: float = 0.95) -> Interval:
    """Percentile bootstrap interval of mean(a) - mean(b), each sample resampled on its own.

    The p-value is the two-sided bootstrap share of resampled differences on the other side of 0.
    """
    xa = np.asarray(pd.Series(a).dropna(), dtype="float64")
    xb = np.asarray(pd.Series(b).dropna(), dtype="float64")
    if xa.size == 0 or xb.size == 0:
        return Interval(math.nan, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    da = xa[rng.integers(0, xa.size, size=(n_resamples, xa.size))].mean(axis=1)
    db = xb[rng.integers(0, xb.size, size=(n_resamples, xb.size))].mean(axis=1)
    diffs = da - db
    tail = (1 - level) / 2
    p = min(1.0, 2 * min((diffs <= 0).mean(), (diffs >= 0).mean()))
    return Interval(
        float(xa.mean() - xb.mean()), float(np.quantile(diffs, tail)), float(np.quantile(diffs, 1 - tail)), float(p)
    )


def welch_test(a, b, level: float = 0.95) -> Interval:
    """Difference of means mean(a) - mean(b) with a Welch t interval and two-sided p-value
    (e.g. revenue per day this period vs the previous one)."""
    xa = np.asarray(pd.Series(a).dropna(), dtype="float64")
    xb = np.asarray(pd.Series(b).dropna(), dtype="float64")
    if xa.size < 2 or xb.size < 2:
        return Interval(math.nan, math.nan, math.nan)
    res = sps.ttest_ind(xa, xb, equal_var=False)
    ci = res.confidence_interval(confidence_level=level)
    return Interval(float(xa.mean() - xb.mean()), float(ci.low), float(ci.high), float(res.pvalue))


def count_ratio_test(n1: int, n2: int, level: float = 0.95) -> Interval:
    """Ratio n1 / n2 of two counts over equal exposure (e.g. orders in two periods of equal length).

    Conditional on the total, n1 ~ Binomial(n1 + n2, 1/2) when both come from the same Poisson
    rate: an exact binomial test gives the p-value, and its interval for the share maps to the
    ratio as share / (1 - share).
    """
    total = int(n1) + int(n2)
    if total == 0 or n2 == 0:
        return Interval(math.nan, math.nan, math.nan)
    res = sps.binomtest(int(n1), total, 0.5)
    ci = res.proportion_ci(confidence_level=level, method="exact")
    to_ratio = lambda s: s / (1 - s) if s < 1 else math.inf  # noqa: E731
    return Interval(n1 / n2, to_ratio(ci.low), to_ratio(ci.high), float(res.pvalue))


@dataclass
class Trend:
    """OLS line through a daily series: value = intercept + slope × day number."""

    slope: float  # change per day
    slope_low: float
    slope_high: float
    p_value: float
    mean: float  # mean of the series
    n_days: int
    fitted: pd.DataFrame  # index = the series' index; columns fit, low, high (band of the line)

    @property
    def change_over_period(self) -> float:
        """Fitted change from the first to the last day, relative to the mean (e.g. +0.12 = +12%)."""
        if not self.mean or math.isnan(self.slope):
            return math.nan
        return self.slope * (self.n_days - 1) / self.mean

    def significant(self, alpha: float = 0.05) -> bool:
        return not math.isnan(self.p_value) and self.p_value < alpha


def linear_trend(series: pd.Series, level: float = 0.95) -> Trend:
    """Fit ``series`` (one value per day, in order) on the day number by OLS.

    The slope's interval and p-value say whether the period really trends or just wobbles; the
    band is the interval of the fitted line (not of single days). Fewer than 3 usable days: NaN.
    """
    y = pd.Series(series, dtype="float64")
    usable = y.notna().to_numpy()
    t = np.arange(len(y), dtype="float64")
    nan_frame = pd.DataFrame({"fit": np.nan, "low": np.nan, "high": np.nan}, index=y.index)
    if usable.sum() < 3:
        return Trend(
            math.nan, math.nan, math.nan, math.nan, float(y.mean()) if usable.any() else math.nan, len(y), nan_frame
        )
    X = sm.add_constant(t)
    model = sm.OLS(y.to_numpy()[usable], X[usable]).fit()
    ci = model.conf_int(alpha=1 - level)
    pred = model.get_prediction(X).summary_frame(alpha=1 - level)
    fitted = pd.DataFrame(
        {
            "fit": pred["mean"].to_numpy(),
            "low": pred["mean_ci_lower"].to_numpy(),
            "high": pred["mean_ci_upper"].to_numpy(),
        },
        index=y.index,
    )
    p_value = float(model.pvalues[1]) if not math.isnan(model.pvalues[1]) else 1.0
    return Trend(
        float(model.params[1]), float(ci[1, 0]), float(ci[1, 1]), p_value, float(y[usable].mean()), len(y), fitted
    )


@dataclass
class LogitResult:
    """Logistic regression of session conversion, reported as odds ratios."""

    table: pd.DataFrame  # variable, level, odds_ratio, ci_low, ci_high, p_value (no intercept)
    n_sessions: int
    n_conversions: int
    references: dict[str, str]
    pooled: dict[str, list[str]] = field(default_factory=dict)  # variable -> levels pooled into Other
    notes: list[str] = field(default_factory=list)
    converged: bool = True

    def odds_ratio(self, variable: str, level: str) -> pd.Series | None:
        rows = self.table[(self.table["variable"] == variable) & (self.table["level"] == level)]
        return None if rows.empty else rows.iloc[0]


def _pool_rare(values: pd.Series, outcome: pd.Series, min_conversions: int) -> tuple[pd.Series, list[str]]:
    """Levels with fewer than ``min_conversions`` positive outcomes become "Other".

    A level that never converts has an odds ratio of 0 and no finite estimate (separation); pooled
    with its rare peers it gets an honest, if wide, interval instead.
    """
    conv = outcome.groupby(values).sum()
    rare = sorted(str(k) for k, v in conv.items() if v < min_conversions)
    if len(rare) < 1:
        return values, []
    return values.where(~values.isin(rare), "Other"), rare


LOGIT_COLUMNS = ["variable", "level", "odds_ratio", "ci_low", "ci_high", "p_value"]
LOGIT_VARIABLES = ("channel", "device", "weekday", "visitor")


def conversion_logit(
    sessions: pd.DataFrame,
    reference_channel: str = "Direct",
    reference_device: str = "desktop",
    min_level_conversions: int = 5,
    level: float = 0.95,
) -> LogitResult:
    """Logit of ``purchased`` on channel + device + weekday + returning visitor.

    ``sessions`` needs channel, device_type, session_date, is_returning_client, purchased (non-bot
    sessions). Each categorical enters as dummies against a reference level (the configured one
    when present, otherwise the most frequent); a variable with a single level is left out. The
    odds ratio of a level is exp(coefficient): the factor by which the odds of buying change vs the
    reference, the other variables held fixed.
    """
    y = sessions["purchased"].astype("int64")
    n, k = int(len(y)), int(y.sum())
    empty = pd.DataFrame(columns=LOGIT_COLUMNS)
    if n == 0 or k == 0 or k == n:
        return LogitResult(
            empty, n, k, {}, notes=["no variation in conversion: the model cannot be fitted"], converged=False
        )
    frame = _logit_factors(sessions)
    y = y.reset_index(drop=True)
    pooled = {}
    for var in ("channel", "device"):
        frame[var], rare = _pool_rare(frame[var], y, min_level_conversions)
        if rare:
            pooled[var] = rare
    frame, y, notes = _drop_never_converting(frame, y, pooled)
    preferred = {"channel": reference_channel, "device": reference_device, "weekday": "Mon", "visitor": "New"}
    X, references, single = _dummies_against_references(frame, preferred)
    notes += single
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fit = sm.Logit(y, X).fit(disp=0, maxiter=200)
        except (np.linalg.LinAlgError, ValueError) as exc:
            return LogitResult(
                empty, n, k, references, pooled, notes + [f"model could not be fitted ({exc})"], converged=False
            )
    converged = bool(fit.mle_retvals.get("converged", True))
    for w in caught:
        if "separation" in str(w.message).lower() or "converge" in str(w.message).lower():
            notes.append(str(w.message).split("\n")[0])
    return LogitResult(_odds_ratios(fit, level), int(len(y)), int(y.sum()), references, pooled, notes, converged)


def _logit_factors(sessions: pd.DataFrame) -> pd.DataFrame:
    """The model's categorical variables, one row per session (positional index)."""
    weekday = pd.to_datetime(pd.Series(sessions["session_date"])).dt.day_of_week.map(
        dict(enumerate(("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")))
    )
    return pd.DataFrame(
        {
            "channel": sessions["channel"].astype(str).to_numpy(),
            "device": sessions["device_type"].astype(str).to_numpy(),
            "weekday": weekday.to_numpy(),
            "visitor": np.where(sessions["is_returning_client"].to_numpy(dtype=bool), "Returning", "New"),
        }
    )


def _drop_never_converting(
    frame: pd.DataFrame, y: pd.Series, pooled: dict[str, list[str]]
) -> tuple[pd.DataFrame, pd.Series, list[str]]:
    """``frame`` and ``y`` without the sessions of levels that never convert, and a note per variable.

    Such a level (e.g. "Other" made only of non-buying channels) has no finite odds ratio, so its
    sessions cannot be in the fit; the notes say which were left out.
    """
    keep = pd.Series(True, index=frame.index)
    notes = []
    for var in LOGIT_VARIABLES:
        conv = y.groupby(frame[var]).sum()
        dead = sorted(str(k) for k, v in conv.items() if v == 0)
        if dead:
            drop = frame[var].isin(dead)
            keep &= ~drop
            label = ", ".join(pooled.get(var, dead) if dead == ["Other"] else dead)
            notes.append(f"{int(drop.sum()):,} sessions with {var} {label} (no purchase at all) are left out")
    if not keep.all():
        frame, y = frame[keep].reset_index(drop=True), y[keep].reset_index(drop=True)
    return frame, y, notes


def _dummies_against_references(
    frame: pd.DataFrame, preferred: dict[str, str]
) -> tuple[pd.DataFrame, dict[str, str], list[str]]:
    """The design matrix (constant + one dummy per non-reference level), the reference of each
    variable, and a note per variable left out for having a single level.

    The preferred reference is used when present and not the pooled "Other" (a mixed bag is no
    baseline to read odds ratios against); otherwise the most frequent level.
    """
    references, dummies, notes = {}, [], []
    for var in LOGIT_VARIABLES:
        counts = frame[var].value_counts()
        if len(counts) < 2:
            notes.append(f"{var} has a single value in the period and is left out")
            continue
        ref = preferred[var] if preferred[var] in counts.index and preferred[var] != "Other" else counts.index[0]
        references[var] = ref
        for lvl in sorted(counts.index):
            if lvl != ref:
                dummies.append(pd.Series((frame[var] == lvl).astype("float64"), name=f"{var}\x1f{lvl}"))
    X = sm.add_constant(pd.concat(dummies, axis=1) if dummies else pd.DataFrame(index=frame.index), has_constant="add")
    return X, references, notes


def _odds_ratios(fit, level: float) -> pd.DataFrame:
    """One row per dummy of the fitted model: odds ratio, its interval and p-value."""
    ci = fit.conf_int(alpha=1 - level)
    rows = []
    with np.errstate(over="ignore"):  # a huge coefficient means an infinite bound, said as inf
        for name in fit.params.index:
            if name == "const":
                continue
            var, lvl = name.split("\x1f", 1)
            rows.append(
                {
                    "variable": var,
                    "level": lvl,
                    "odds_ratio": float(np.exp(fit.params[name])),
                    "ci_low": float(np.exp(ci.loc[name, 0])),
                    "ci_high": float(np.exp(ci.loc[name, 1])),
                    "p_value": float(fit.pvalues[name]),
                }
            )
    return pd.DataFrame(rows, columns=LOGIT_COLUMNS)
