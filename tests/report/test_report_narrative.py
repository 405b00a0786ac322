"""The narrative and the data caveats are derived from the figures: different data, different
sentences and numbers; every number a sentence states is one the figures hold."""

from __future__ import annotations

import re
from datetime import date
from types import SimpleNamespace

import pandas as pd
import pytest

from puffy.params import REPO_ROOT
from puffy.report import build_report
from puffy.report.narrative import Statement, _channel_statements, _top, data_caveats, money, pct, to_markdown
from support.report_outputs import FixtureConfig, make_outputs

PARAMS = REPO_ROOT / "params"

# A: healthy site, clean data. B: mobile checkout broken, tracking problems, prices lost.
CLEAN = FixtureConfig(seed=5, mobile_penalty=1.0, write_findings=False)
TROUBLED = FixtureConfig(
    seed=5,
    mobile_penalty=0.25,
    mobile_share=0.7,
    missing_prices_from=date(2025, 3, 6),
    client_id_null_days={date(2025, 3, 5): 0.15, date(2025, 3, 6): 0.09},
    referrer_lost_from=date(2025, 3, 5),
)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    return build_report(make_outputs(tmp_path_factory.mktemp("clean"), CLEAN), PARAMS)


@pytest.fixture(scope="module")
def troubled(tmp_path_factory):
    return build_report(make_outputs(tmp_path_factory.mktemp("troubled"), TROUBLED), PARAMS)


def rules(statements) -> set[str]:
    return {s.rule for s in statements}


def test_different_data_gives_different_wording_and_numbers(clean, troubled):
    a, b = to_markdown(clean.narrative), to_markdown(troubled.narrative)
    assert a != b
    # The mobile problem is found, worded and turned into a recommendation only where it exists.
    assert "device_gap" in rules(troubled.narrative.concerning) and "device_gap" in rules(
        troubled.narrative.recommendations
    )
    assert "device_gap" not in rules(clean.narrative.concerning)
    # Tracking problems reach page 1 (the narrative's tracking caveats) only in the troubled fixture.
    assert {"tracking_client_id_loss", "tracking_referrer_loss"} <= rules(troubled.narrative.tracking)
    assert not rules(clean.narrative.tracking) & {"tracking_client_id_loss", "tracking_referrer_loss"}
    assert {c.id for c in clean.figures.caveats}.isdisjoint({"client_id_loss", "referrer_loss", "missing_item_prices"})
    assert {"client_id_loss", "referrer_loss", "missing_item_prices"} <= {c.id for c in troubled.figures.caveats}


def test_device_gap_sentence_states_the_computed_rates(troubled):
    fig = troubled.figures
    mobile, desktop = fig.funnel.loc["mobile"], fig.funnel.loc["desktop"]
    text = next(s.text for s in troubled.narrative.concerning if s.rule == "device_gap")
    assert pct(mobile["conversion_rate"], 2) in text and pct(desktop["conversion_rate"], 2) in text
    share = mobile["sessions"] / fig.funnel["sessions"].sum()
    assert text.startswith(f"Mobile is {pct(share, 0)} of sessions")
    rec = next(s.text for s in troubled.narrative.recommendations if s.rule == "device_gap")
    gain = (desktop["conversion_rate"] - mobile["conversion_rate"]) / 2 * mobile["sessions"]
    assert f"about {round(gain):,} orders" in rec


def test_caveats_are_sized_from_the_data(troubled):
    caveats = {c.id: c for c in troubled.figures.caveats}
    # 7 days x 1,000 page views; 1% without a client id except 15% and 9% on 5 and 6 March: sized
    # from the day the loss starts (5 Mar), the share is (150 + 90 + 10) / 3,000, not diluted by the
    # four clean days before (which would give (5 x 10 + 150 + 90) / 7,000).
    share = (150 + 90 + 10) / 3000
    assert caveats["client_id_loss"].size == pytest.approx(share)
    assert caveats["client_id_loss"].start == date(2025, 3, 5)
    assert (
        f"about {pct(share)}" in caveats["client_id_loss"].text and "from Wed 5 Mar" in caveats["client_id_loss"].text
    )
    assert "15.0% on Wed 5 Mar" in caveats["client_id_loss"].text
    # Referrer: Direct's share from the day the shift starts (found in the data: 5 Mar) vs before.
    assert caveats["referrer_loss"].start == date(2025, 3, 5)
    s = troubled.data.human_sessions
    on = s["session_date"] >= date(2025, 3, 5)
    gap = (s.loc[on, "channel"] == "Direct").mean() - (s.loc[~on, "channel"] == "Direct").mean()
    assert caveats["referrer_loss"].size == pytest.approx(gap) and gap > 0.05
    # Missing prices: exactly the orders of 6 and 7 March.
    o = troubled.data.orders
    missing = o[o["order_date"] >= date(2025, 3, 6)]
    assert troubled.figures.products["orders_missing"] == len(missing)
    assert money(missing["revenue"].sum()) in caveats["missing_item_prices"].text
    # Findings no caveat explains are still listed; harmless ones are not.
    other = caveats["other_findings"].text
    assert "funnel.conversion_rate_out_of_band" in other and "schema.column_renamed" not in other


def test_money_in_sentences_follows_the_data(tmp_path):
    """Double every price: amounts in the sentences double, rates stay — the numbers are computed."""
    base = build_report(make_outputs(tmp_path / "x1", TROUBLED), PARAMS)
    cfg = FixtureConfig(**{**TROUBLED.__dict__, "price_scale": 2.0})
    doubled = build_report(make_outputs(tmp_path / "x2", cfg), PARAMS)
    amount = base.figures.products["revenue_missing"]
    assert doubled.figures.products["revenue_missing"] == pytest.approx(2 * amount)
    rec = lambda r: next(c.recommendation for c in r.figures.caveats if c.id == "missing_item_prices")  # noqa: E731
    assert money(amount) in rec(base) and money(2 * amount) in rec(doubled)
    assert base.figures.current["conversion_rate"] == doubled.figures.current["conversion_rate"]


def test_changes_vs_previous_period_are_tested_and_worded(tmp_path):
    """Conversion triples in the second week: the narrative says so, with its p-value."""
    cfg = FixtureConfig(seed=9, days=14, boost_from=date(2025, 3, 8), boost=3.0, write_findings=False)
    outputs = make_outputs(tmp_path / "boost", cfg)
    second = build_report(outputs, PARAMS, start="2025-03-08", end="2025-03-14")
    first = build_report(outputs, PARAMS, start="2025-03-01", end="2025-03-07")
    k = second.figures.kpis["conversion_rate"]
    assert k["previous"] == pytest.approx(first.figures.current["conversion_rate"])
    text = next(s.text for s in second.narrative.moved if s.rule == "moved_conversion_rate")
    assert text.startswith(
        f"Conversion rate rose {k['change_pct'] * 100:+.1f}% (vs previous 7 days: "
        f"{pct(k['value'], 2)} vs {pct(k['previous'], 2)})"
    )
    assert "beyond noise (p < 0.001, adjusted p < 0.001)" in text
    # The first week has no previous period: changes compare its last 3 days with its first 3.
    assert "no_previous" in rules(first.narrative.concerning)
    assert first.figures.windows.basis == "halves" and len(first.figures.windows.current) == 3
    assert to_markdown(first.narrative) != to_markdown(second.narrative)


def test_every_percentage_in_the_narrative_is_a_figure(troubled):
    """Each percentage quoted is one of the rates/shares/changes the figures hold (to its rounding)."""
    fig = troubled.figures
    values = [fig.current["conversion_rate"]]
    for _, r in fig.channels.iterrows():
        values += [r["conversion_rate"], r["ci_low"], r["ci_high"], r["share_of_sessions"], r.get("rate_rest", 0)]
        values += [r[c] for c in fig.channels.columns if c.startswith("share_")]
    for _, r in fig.funnel.iterrows():
        values += [r[c] for c in fig.funnel.columns if c.endswith("_rate")]
        values.append(r["sessions"] / fig.funnel["sessions"].sum())
    for _, r in fig.visitors.iterrows():
        values += [r["conversion_rate"], r["share_of_sessions"], r["revenue"] / fig.current["revenue"]]
    values += list(fig.products["table"]["share"]) + [fig.products["share_missing"]]
    values += [c.size for c in fig.caveats]
    values += [t.change_over_period for t in fig.trends.values()]
    worst = troubled.data.client_id_null
    values += list(worst["null_page_views"] / worst["page_views"]) + [fig.params.client_id_null_caveat]
    values.append(fig.params.confidence_level)
    shown = {f"{v * 100:.{d}f}" for v in values if v == v for d in (0, 1, 2)}
    for s in troubled.narrative.working + troubled.narrative.concerning + troubled.narrative.recommendations:
        for number in re.findall(r"([\d.]+)%", s.text):
            assert number in shown, f"{number}% in {s.text!r} is not a computed figure"


# --- small hand-built cases -------------------------------------------------------------------


def _caveat_inputs(orders: pd.DataFrame):
    """The minimum ``data_caveats`` reads: one clean day, no findings, the given orders."""
    from puffy.report.data import Period, PeriodData, ReportParams

    day = date(2025, 3, 1)
    period = Period(day, day, (day,), date(2025, 2, 28), date(2025, 2, 28), (), False)
    data = PeriodData(
        period,
        sessions=pd.DataFrame(),
        orders=orders,
        items=pd.DataFrame(),
        attribution=pd.DataFrame(),
        rejects=pd.DataFrame({"reason": pd.Series(dtype=object)}),
    )
    fig = SimpleNamespace(
        params=ReportParams(),
        products={"orders_missing": 0},
        orders_without_session=0,
        current={"sessions": 100, "revenue": 1000.0},
        bot_sessions=0,
    )
    return data, fig


def test_collision_caveat_counts_the_later_order_of_each_pair():
    """The UAT case: 4 transaction ids each used by two different orders on the same day, plus 2
    ordinary orders (10 orders, 6 ids). The transform flags all 8 orders of the pairs; the sentence
    says "sharing a transaction id with an *earlier*, different order", which is true of 4."""
    orders = pd.DataFrame(
        {
            "order_key": ["T1", "T1#2", "T2", "T2#2", "T3", "T3#2", "T4", "T4#2", "U1", "U2"],
            "transaction_variant": [1, 2] * 4 + [1, 1],
            "is_transaction_id_collision": [True] * 8 + [False] * 2,
        }
    )
    data, fig = _caveat_inputs(orders)
    caveat = next(c for c in data_caveats(data, fig) if c.id == "order_hygiene")
    assert "4 orders sharing a transaction id with an earlier, different order" in caveat.text
    assert caveat.size == 4.0


def _channels_fig(rows: dict) -> SimpleNamespace:
    cols = ["sessions", "conversion_rate", "ci_low", "ci_high", "share_of_sessions", "diff_vs_rest", "p_vs_rest"]
    channels = pd.DataFrame.from_dict(rows, orient="index", columns=cols)
    from puffy.report.data import ReportParams
    from puffy.report.evidence import comparison, control

    family = control(
        [
            comparison(f"channel:{c}", "channel", c, r["diff_vs_rest"], r["p_vs_rest"], "z")
            for c, r in channels.iterrows()
        ]
    )
    return SimpleNamespace(params=ReportParams(), channels=channels, current={"conversion_rate": 0.02}, family=family)


def test_best_converting_channel_is_worded_best_and_comes_first():
    """Email converts at 6% on 500 sessions (+4 pp vs the rest: 20 extra buyers), Affiliates at 3%
    on 3,000 (+1.5 pp: 45 extra buyers). Email "converts best"; Affiliates, though bigger in impact,
    "also converts" and must not be listed before it."""
    fig = _channels_fig(
        {
            "Affiliates": [3000, 0.03, 0.025, 0.037, 0.6, 0.015, 0.001],
            "Email": [500, 0.06, 0.043, 0.083, 0.1, 0.04, 0.001],
            "Direct": [1500, 0.012, 0.008, 0.018, 0.3, -0.01, 0.2],
        }
    )
    working, _ = _channel_statements(fig)
    ordered = _top(working + [Statement("other", "A 30-weight sentence.", 30.0)], 4)
    texts = [s.text for s in ordered if s.rule == "channel_high"]
    assert texts[0].startswith("Email converts best") and texts[1].startswith("Affiliates also converts")
    # and the "also" sentence never survives a cut that drops the "best" one
    assert [s.rule for s in _top(working + [Statement("other", "x", 30.0)], 1)] == ["other"]
    assert [s.text.split()[0] for s in _top(working, 1)] == ["Email"]
