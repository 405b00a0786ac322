"""Claims follow evidence: one family of every comparison the report makes, controlled together.

Every test the executive summary runs (period or half-vs-half changes, trends, change points,
channel vs the rest of the site, device vs the reference device, returning vs new, the logistic
regression's odds ratios) becomes a :class:`Comparison` with a stable ``key``. :func:`control`
adjusts their p-values together with ``statsmodels.stats.multitest.multipletests`` (Holm by
default: the chance of *any* false claim in the report stays below ``alpha``; ``fdr_bh`` controls
the expected share of false claims instead). A sentence may call a difference real only when its
comparison survives (``adjusted_p < alpha``).

A **recommendation** needs more: its effect must survive the control *and* agree with the
adjusted model (the logit odds ratio of the same level points the same way and survives too).
:func:`recommendation_problems` says what is missing; the narrative turns such a claim into a
hypothesis with the test that would settle it, sized by :func:`sessions_to_detect` (a power
calculation, ``statsmodels.stats.power.NormalIndPower``).

Why one family: about twenty tests at 5% each would show one "significant" difference by chance
in most reports; a p of 0.025 among twenty is not evidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

#: Methods of ``multipletests`` the params may name.
METHODS = {"holm": "Holm", "fdr_bh": "Benjamini–Hochberg"}


@dataclass
class Comparison:
    """One test the report makes. ``direction`` is the sign of the effect (+1 / -1 / 0);
    ``adjusted_p`` is filled by :func:`control`."""

    key: str  # e.g. "device:mobile", "logit:device:mobile", "change:sessions"
    kind: str  # change, trend, changepoint, channel, device, visitor, logit
    label: str  # what is compared, in words
    estimate: float  # the effect (difference, ratio-1, odds ratio-1, slope ...)
    p_value: float
    direction: int
    test: str  # the test used, in words
    adjusted_p: float = math.nan

    def survives(self, alpha: float) -> bool:
        return not math.isnan(self.adjusted_p) and self.adjusted_p < alpha


@dataclass
class Family:
    """The controlled family: comparisons by key, the method and alpha."""

    comparisons: dict[str, Comparison] = field(default_factory=dict)
    method: str = "holm"
    alpha: float = 0.05

    def get(self, key: str) -> Comparison | None:
        return self.comparisons.get(key)

    def survives(self, key: str) -> bool:
        c = self.comparisons.get(key)
        return c is not None and c.survives(self.alpha)

    @property
    def size(self) -> int:
        return sum(1 for c in self.comparisons.values() if not math.isnan(c.p_value))

    @property
    def method_label(self) -> str:
        return METHODS.get(self.method, self.method)

    def table(self) -> pd.DataFrame:
        """One row per comparison (tested ones), smallest adjusted p first."""
        rows = [
            {
                "key": c.key,
                "kind": c.kind,
                "comparison": c.label,
                "estimate": c.estimate,
                "p_value": c.p_value,
                "adjusted_p": c.adjusted_p,
                "survives": c.survives(self.alpha),
                "test": c.test,
            }
            for c in self.comparisons.values()
            if not math.isnan(c.p_value)
        ]
        cols = ["key", "kind", "comparison", "estimate", "p_value", "adjusted_p", "survives", "test"]
        return pd.DataFrame(rows, columns=cols).sort_values(["adjusted_p", "p_value"]).reset_index(drop=True)


def control(comparisons: list[Comparison], method: str = "holm", alpha: float = 0.05) -> Family:
    """Adjust every comparison's p-value together (NaN p-values: untested, left out of the count)."""
    family = Family({c.key: c for c in comparisons}, method, alpha)
    tested = [c for c in comparisons if not math.isnan(c.p_value)]
    if tested:
        p = np.clip(np.array([c.p_value for c in tested], dtype="float64"), 0.0, 1.0)
        _, adjusted, _, _ = multipletests(p, alpha=alpha, method=method)
        for c, a in zip(tested, adjusted):
            c.adjusted_p = float(a)
    return family


def _sign(x: float) -> int:
    return 0 if x is None or math.isnan(x) or x == 0 else (1 if x > 0 else -1)


def comparison(key, kind, label, estimate, p_value, test, direction=None) -> Comparison:
    p = math.nan if p_value is None else float(p_value)
    est = math.nan if estimate is None else float(estimate)
    return Comparison(key, kind, label, est, p, _sign(est) if direction is None else direction, test)


def recommendation_problems(family: Family, evidence: tuple[str, ...], adjusted: tuple[str, ...]) -> list[str]:
    """Why a recommendation resting on ``evidence`` (comparison keys) is not supported, or [].

    Every evidence comparison must exist and survive the control. Every ``adjusted`` key (the
    logit term of the same factor) must survive as well and point the same way as the evidence:
    an unadjusted gap that the model with channel, device, weekday and visitor type held fixed
    does not confirm is confounded or noise.
    """
    problems = []
    if not evidence:
        return ["no evidence given"]
    for key in evidence:
        c = family.get(key)
        if c is None or math.isnan(c.p_value):
            problems.append(f"{key}: not tested")
        elif not c.survives(family.alpha):
            problems.append(
                f"{key}: p = {c.p_value:.3f} does not survive {family.method_label} over "
                f"{family.size} comparisons (adjusted p = {c.adjusted_p:.3f})"
            )
    direction = {family.get(k).direction for k in evidence if family.get(k) is not None}
    for key in adjusted:
        c = family.get(key)
        if c is None or math.isnan(c.p_value):
            problems.append(f"{key}: the adjusted model has no estimate")
            continue
        if direction and c.direction not in direction:
            problems.append(f"{key}: the adjusted model points the other way")
        if not c.survives(family.alpha):
            problems.append(
                f"{key}: the adjusted model does not confirm it (p = {c.p_value:.3f}, adjusted p = {c.adjusted_p:.3f})"
            )
    return problems


def sessions_to_detect(rate1: float, rate2: float, alpha: float, power: float = 0.8, ratio: float = 1.0) -> float:
    """Sessions needed in group 1 to detect rate1 vs rate2 (two-sided, Cohen's h, normal power).

    ``ratio`` = n2 / n1. NaN when the rates are equal or unknown (nothing to detect)."""
    if any(x is None or math.isnan(x) for x in (rate1, rate2)) or rate1 == rate2:
        return math.nan
    h = abs(proportion_effectsize(rate1, rate2))
    if h == 0:
        return math.nan
    return float(
        NormalIndPower().solve_power(effect_size=h, alpha=alpha, power=power, ratio=ratio, alternative="two-sided")
    )


@dataclass(frozen=True)
class HoldoutDesign:
    """An audience-suppression (holdout) test of one channel, sized by a power calculation."""

    channel: str
    credited_revenue_low: float
    credited_revenue_high: float
    baseline_rate: float  # conversion of the channel's sessions
    detectable_drop: float  # relative drop of the held-out group's conversion to detect
    holdout_share: float
    sessions_needed: float  # total (exposed + held out)
    sessions_per_day: float
    days_needed: float
    alpha: float
    power: float


def holdout_design(
    channel: str,
    baseline_rate: float,
    sessions_per_day: float,
    revenue_low: float,
    revenue_high: float,
    detectable_drop: float,
    holdout_share: float,
    alpha: float,
    power: float,
) -> HoldoutDesign | None:
    """Size a suppression test: hold ``holdout_share`` of the channel's audience out and detect a
    ``detectable_drop`` relative fall of their conversion (the channel causing that share of its
    credited orders). Returns None when there is nothing to size (no conversions, no traffic)."""
    if not baseline_rate or math.isnan(baseline_rate) or not sessions_per_day:
        return None
    held = baseline_rate * (1 - detectable_drop)
    ratio = (1 - holdout_share) / holdout_share
    n_holdout = sessions_to_detect(held, baseline_rate, alpha, power, ratio)
    if math.isnan(n_holdout):
        return None
    total = n_holdout * (1 + ratio)
    return HoldoutDesign(
        channel,
        revenue_low,
        revenue_high,
        baseline_rate,
        detectable_drop,
        holdout_share,
        total,
        sessions_per_day,
        total / sessions_per_day,
        alpha,
        power,
    )
