"""Claims follow evidence: the family's control, recommendations vs the adjusted model, power
calculations, change points, nested funnel, comparison windows — on hand-built inputs whose
answers were worked out by hand (in each test's comment)."""

from __future__ import annotations

import math
from datetime import date, timedelta
from types import SimpleNamespace

import pandas as pd
import pytest
from scipy.stats import norm

from puffy.report.data import Period, ReportParams
from puffy.report.evidence import comparison, control, recommendation_problems, sessions_to_detect
from puffy.report.kpis import funnel_by_device
from puffy.report.movements import change_point, comparison_windows, decompose
from puffy.report.narrative import Narrative, Statement, validate_recommendations


def test_holm_over_one_family_by_hand():
    """p = 0.01, 0.04, 0.03, 0.5 (m = 4). Holm, sorted: 0.01·4 = 0.04; 0.03·3 = 0.09;
    0.04·2 = 0.08 → raised to 0.09 (monotone); 0.5·1 = 0.5. Only the first survives at 5%."""
    fam = control(
        [comparison(k, "x", k, 1.0, p, "t") for k, p in (("a", 0.01), ("b", 0.04), ("c", 0.03), ("d", 0.5))],
        "holm",
        0.05,
    )
    assert [round(fam.get(k).adjusted_p, 6) for k in "abcd"] == [0.04, 0.09, 0.09, 0.5]
    assert [fam.survives(k) for k in "abcd"] == [True, False, False, False]
    # Benjamini–Hochberg: sorted 0.01·4/1 = 0.04, 0.03·4/2 = 0.06, 0.04·4/3 = 0.0533 → 0.0533,
    # 0.5 → min from the top: c = min(0.06, 0.0533) = 0.0533.
    bh = control(
        [comparison(k, "x", k, 1.0, p, "t") for k, p in (("a", 0.01), ("b", 0.04), ("c", 0.03), ("d", 0.5))],
        "fdr_bh",
        0.05,
    )
    assert bh.get("c").adjusted_p == pytest.approx(0.04 * 4 / 3)
    # An untested comparison (NaN p) is not counted in the family.
    fam = control([comparison("a", "x", "a", 1.0, 0.02, "t"), comparison("b", "x", "b", 1.0, math.nan, "t")])
    assert fam.size == 1 and fam.get("a").adjusted_p == pytest.approx(0.02)


def _issue_family(mobile_logit_p: float, mobile_logit_or: float):
    """The real export's mobile claim: unadjusted p = 0.025 among 20 comparisons (19 others at
    p = 0.5), and the logit's mobile odds ratio."""
    comps = [comparison("device:mobile", "device", "mobile", -0.002, 0.025, "z")]
    comps += [comparison(f"other:{i}", "x", str(i), 0.1, 0.5, "t") for i in range(18)]
    comps.append(comparison("logit:device:mobile", "logit", "mobile OR", mobile_logit_or - 1, mobile_logit_p, "logit"))
    return control(comps, "holm", 0.05)


def test_a_recommendation_fails_when_its_evidence_does_not_survive_or_the_model_disagrees():
    # p = 0.025 × 20 → Holm's adjusted p 0.5: does not survive.
    fam = _issue_family(0.31, 0.88)
    problems = recommendation_problems(fam, ("device:mobile",), ("logit:device:mobile",))
    assert any("does not survive Holm over 20 comparisons" in p for p in problems)
    assert any("adjusted model does not confirm" in p for p in problems)
    # The adjusted model pointing the other way is a problem of its own.
    fam = _issue_family(0.0001, 1.5)
    fam.get("device:mobile").adjusted_p = 0.001  # as if the gap survived
    assert any(
        "points the other way" in p for p in recommendation_problems(fam, ("device:mobile",), ("logit:device:mobile",))
    )
    # Both surviving and agreeing: no problem.
    comps = [
        comparison("device:mobile", "device", "m", -0.01, 1e-6, "z"),
        comparison("logit:device:mobile", "logit", "m", -0.4, 1e-5, "logit"),
    ]
    assert recommendation_problems(control(comps), ("device:mobile",), ("logit:device:mobile",)) == []


def test_validate_recommendations_rejects_an_unsupported_action():
    fig = SimpleNamespace(family=_issue_family(0.31, 0.88))
    bad = Narrative(
        recommendations=[
            Statement(
                "device_gap",
                "Fix mobile.",
                1.0,
                kind="action",
                evidence=("device:mobile",),
                adjusted=("logit:device:mobile",),
            )
        ]
    )
    assert validate_recommendations(fig, bad)
    ok = Narrative(
        recommendations=[
            Statement("incrementality", "Run a holdout.", 1.0, kind="test"),
            Statement("caveat_x", "Fix tracking.", 1.0, kind="fix"),
        ]
    )
    assert validate_recommendations(fig, ok) == []
    hyp = Narrative(recommendations=[Statement("x", "Maybe.", 1.0, kind="hypothesis")])
    assert validate_recommendations(fig, hyp)


def test_sessions_to_detect_by_hand():
    """2% vs 1%, α = 0.05, power 0.8, equal groups: Cohen's h = 2·asin(√.02) − 2·asin(√.01) =
    0.0835; the arcsine of a rate has variance 1/n, so the difference has 2/n and
    n = 2·((1.95996 + 0.84162) / h)² = 2,254 per group (Cohen's table: h = 0.2 → 392)."""
    h = 2 * math.asin(math.sqrt(0.02)) - 2 * math.asin(math.sqrt(0.01))
    by_hand = 2 * ((norm.ppf(0.975) + norm.ppf(0.8)) / h) ** 2
    assert sessions_to_detect(0.02, 0.01, 0.05, 0.8) == pytest.approx(by_hand, rel=1e-3)
    assert round(by_hand) == 2254
    assert round(2 * ((norm.ppf(0.975) + norm.ppf(0.8)) / 0.2) ** 2) == 392
    assert math.isnan(sessions_to_detect(0.02, 0.02, 0.05))


def test_change_point_finds_a_level_shift_and_pays_for_the_search():
    days = [date(2025, 3, 1) + timedelta(days=i) for i in range(14)]
    # 790 a day for 7 days, then 440: the split is before day 8 (8 Mar), the shift −44.3%.
    shifted = pd.Series([790, 800, 780, 795, 785, 790, 800, 440, 445, 430, 450, 440, 435, 445], index=days)
    cp = change_point(shifted, "Paid Search sessions", permutations=999, seed=1)
    assert cp.day == date(2025, 3, 8)
    assert cp.before == pytest.approx(sum([790, 800, 780, 795, 785, 790, 800]) / 7)
    assert cp.relative_change == pytest.approx(cp.after / cp.before - 1) and cp.relative_change < -0.4
    assert cp.p_value < 0.01  # a perfect separation: about 1 in 1,716 orderings (×2 splits) or fewer
    # Noise around a flat level: no convincing change point.
    flat = pd.Series([500, 510, 495, 505, 490, 500, 515, 498, 502, 507, 493, 501, 499, 506], index=days)
    assert change_point(flat, "flat", permutations=999, seed=1).p_value > 0.05
    # Too few days (fewer than 2 × min_segment): nothing is searched.
    assert change_point(shifted.iloc[:5], "short").day is None


def test_nested_funnel_counts_skipped_purchases_apart():
    """4 sessions: a full path; view+cart only; a purchase with no earlier step (checkout host);
    a purchase after a view and a checkout but no cart. Nested: 2 views, 1 cart, 1 checkout,
    1 purchase through the funnel; 2 purchases skipped a step; conversion 3/4."""
    s = pd.DataFrame(
        {
            "device_type": ["mobile"] * 4,
            "viewed_product": [True, True, False, True],
            "added_to_cart": [True, True, False, False],
            "started_checkout": [True, False, False, True],
            "purchased": [True, False, True, True],
        }
    )
    f = funnel_by_device(s).loc["mobile"]
    assert (f["sessions"], f["viewed_product"], f["added_to_cart"], f["started_checkout"], f["purchased"]) == (
        4,
        3,
        2,
        1,
        1,
    )
    assert f["purchased_skipped"] == 2 and f["purchased_all"] == 3
    assert f["conversion_rate"] == pytest.approx(0.75)
    assert f["purchased_rate"] == pytest.approx(1.0)  # of the one nested checkout, one bought


def test_comparison_windows_and_decomposition():
    days = [date(2025, 3, 1) + timedelta(days=i) for i in range(3)]
    no_prev = Period(days[0], days[-1], tuple(days), date(2025, 2, 26), date(2025, 2, 28), (), False)
    w = comparison_windows(no_prev, days)
    assert w.basis == "halves" and w.current == (days[2],) and w.base == (days[0],)  # middle day left out
    assert w.label == "last 1 vs first 1 days"
    with_prev = Period(
        days[0],
        days[-1],
        tuple(days),
        date(2025, 2, 26),
        date(2025, 2, 28),
        tuple(date(2025, 2, 26) + timedelta(days=i) for i in range(3)),
        True,
    )
    assert comparison_windows(with_prev, days).basis == "previous"
    # Sessions 10 → 6: Paid Search −5 (125% of the change), Email +1 (−25%).
    base = pd.DataFrame(
        {"session_id": range(10), "channel": ["Paid Search"] * 8 + ["Email"] * 2, "n_orders": 0, "revenue": 0.0}
    )
    cur = pd.DataFrame(
        {"session_id": range(6), "channel": ["Paid Search"] * 3 + ["Email"] * 3, "n_orders": 0, "revenue": 0.0}
    )
    d = decompose(cur, base, "channel")
    assert list(d.index) == ["Paid Search", "Email"]
    assert d.loc["Paid Search", "sessions_change"] == -5 and d.loc["Paid Search", "sessions_share_of_change"] == 1.25


def test_params_validate_the_method():
    assert ReportParams(multiple_comparison_method="fdr_bh").multiple_comparison_method == "fdr_bh"
    with pytest.raises(ValueError):
        ReportParams(multiple_comparison_method="bonferoni")
